"""Exactly one welcome event per identity when the broker stalls, is cut mid-confirm, or is
drained by several relays — counted by message id on the real queue."""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Any

import aiohttp
import pytest

from tests.hooks.conftest import HEADER, Consumer, HooksFactory
from tests.hooks.test_verification import jsonnet_payload
from tests.support.relay import FaultyRelay

URL = "/hooks/kratos/verification"


def copies(consumer: Consumer) -> collections.Counter[str]:
    return collections.Counter(str(m.message_id) for m in consumer.messages)


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_deliveries_during_a_broker_stall_publish_each_event_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
    backend: str,
) -> None:
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    env = {"RABBITMQ_URL": broker.url("amqp", "/", "guest:guest"), "HOOKS_BUDGET": "2.0"}
    if backend == "postgres":
        env |= {"DATABASE_URL": database_url, "HOOKS_OUTBOX_TABLE": f"ob_{uuid.uuid4().hex[:8]}"}
    svc = await hooks_service(**env)
    loop = asyncio.get_running_loop()
    broker.pause()
    stalled_at = loop.time()
    for _ in range(3):
        started = loop.time()
        async with http.post(
            svc.internal_url + URL, json=jsonnet_payload(str(uuid.uuid4())), headers=HEADER
        ) as response:
            assert response.status == 200
            assert await response.json() == {"status": "queued"}
        assert loop.time() - started < 2.0
    await asyncio.sleep(max(0.0, stalled_at + 5.0 - loop.time()))
    broker.resume()
    await consumer.drain(want=3, timeout=10, settle=2.0)
    assert sorted(copies(consumer).values()) == [1, 1, 1]
