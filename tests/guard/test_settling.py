"""Recording an attempt's outcome happens after the answer is on its way, off the
connection's critical path — and nothing slips through while it is still being recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from proxy.guard.core import Guard
from tests.conftest import Kratos
from tests.guard.client import PASSWORD, api_flow, guards, lockout_messages, submit
from tests.guard.conftest import Guarded

LOGIN = "/self-service/login"
ONE_FREE = {"BACKOFF_PAIR_FREE": "1", "BACKOFF_IDENTIFIER_FREE": "1"}


def hold_settles(guard: Guard, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Redis answering the post-update late: every settle waits for the returned gate."""
    gate = asyncio.Event()
    settle = guard.store.settle

    async def held(*args: Any, **kwargs: Any) -> None:
        await gate.wait()
        await settle(*args, **kwargs)

    monkeypatch.setattr(guard.store, "settle", held)
    return gate


async def test_the_answer_does_not_wait_for_the_outcome_to_be_recorded(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(**ONE_FREE)
    guard = guards(svc)[0]
    gate = hold_settles(guard, monkeypatch)
    flow = await api_flow(http, svc.public_url)
    wrong = await asyncio.wait_for(submit(http, svc.public_url, flow, "alice@example.com"), 2)
    assert wrong.status == 400 and not lockout_messages(wrong.json())  # Kratos' own answer

    # Still being recorded: the retry is judged as if the failure had landed.
    retry = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)
    assert retry.status == 400 and lockout_messages(retry.json())
    assert kratos.state.count("POST", LOGIN) == 1

    gate.set()
    await guard.drain()
    report = await guard.report(guard.names.identifier_key("alice@example.com"))
    assert report is not None and report.failures == 1 and report.in_flight == 0


async def test_shutdown_waits_for_outcomes_still_being_recorded(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = await guarded(**ONE_FREE)
    guard = guards(svc)[0]
    gate = hold_settles(guard, monkeypatch)
    flow = await api_flow(http, svc.public_url)
    assert (await submit(http, svc.public_url, flow, "bob@example.com")).status == 400
    asyncio.get_running_loop().call_later(0.2, gate.set)
    await svc.running.stop()
    report = await guard.report(guard.names.identifier_key("bob@example.com"))
    assert report is not None and report.failures == 1  # landed before Redis was closed
