"""Exactly one welcome event when the *outbox database* stalls during the hook (found by
``make chaos``): the INSERT's answer is held past HOOKS_DB_TIMEOUT, the hook keeps the event
in the local spool and publishes it from there — and the row the database did take, once the
stall ends, must not be published a second time when its claim runs out."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from tests.hooks.conftest import Consumer, HooksFactory, wait_until
from tests.hooks.test_late_confirms import copies, deliver, pending
from tests.support.relay import FaultyRelay


async def test_an_event_written_during_a_database_stall_is_published_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
) -> None:
    database: FaultyRelay = await relay_to("127.0.0.1", 5432)
    name = database_url.rpartition("/")[2]
    svc = await hooks_service(
        DATABASE_URL=database.url("postgresql", f"/{name}", "postgres"),
        HOOKS_OUTBOX_TABLE=f"ob_{uuid.uuid4().hex[:8]}",
        HOOKS_DB_TIMEOUT="0.3",
        HOOKS_CONFIRM_TIMEOUT="1",
        HOOKS_OUTBOX_LEASE="2.5",
    )
    identities = [str(uuid.uuid4()) for _ in range(4)]
    # A first event while all is well: its INSERT is prepared on the pooled connection, so
    # the next one goes out in one write (as on a busy service) and the database runs it.
    assert (await deliver(http, svc.internal_url, identities[0]))[1]["status"] == "published"
    database.pause(down=True, up=False)  # the database gets each INSERT; its answers wait
    for identity in identities[1:]:
        status, body = await deliver(http, svc.internal_url, identity)
        assert status == 200 and body["status"] in {"published", "queued"}, body
    await asyncio.sleep(0.5)
    database.resume()  # the INSERTs commit: the rows exist, claimed by this process
    await asyncio.sleep(3.5)  # past HOOKS_OUTBOX_LEASE: the relay may claim the rows now
    assert await wait_until(lambda: _empty(http, svc.internal_url), timeout=10)
    await consumer.drain(want=len(identities), settle=1.5)
    assert sorted(copies(consumer).values()) == [1, 1, 1, 1]


async def _empty(http: aiohttp.ClientSession, base: str) -> bool:
    return await pending(http, base) == 0
