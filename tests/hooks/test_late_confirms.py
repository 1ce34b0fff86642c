"""Exactly one welcome event per identity when the broker stalls (bytes held, the connection
open), is cut while confirms are out, or is fed by several relays on one Postgres outbox —
counted by message id on the real queue."""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import pytest
from prometheus_client import REGISTRY

from handlers.hooks.events import envelope, message_id, parse_welcome
from handlers.hooks.outbox import Entry, PostgresOutbox
from tests.hooks.conftest import API_KEY, HEADER, Consumer, HooksFactory, wait_until
from tests.hooks.test_verification import jsonnet_payload
from tests.support.metrics import metric_total
from tests.support.process import ServiceProcess
from tests.support.relay import FaultyRelay

URL = "/hooks/kratos/verification"
PUBLISHES = "kratos_hooks_outbox_publish_total"
LATE = "kratos_hooks_outbox_late_confirms_total"
TAKEOVERS = "kratos_hooks_outbox_lease_takeovers_total"
STALL = 5.0


def lines(caplog: pytest.LogCaptureFixture, logger: str, starting: str) -> list[logging.LogRecord]:
    """This service's log lines (a library's record may not even format) that start so."""
    return [r for r in caplog.records if r.name == logger and r.getMessage().startswith(starting)]


def copies(consumer: Consumer) -> collections.Counter[str]:
    """How many times each message id reached the queue."""
    return collections.Counter(str(m.message_id) for m in consumer.messages)


def backend_env(backend: str, database_url: str) -> dict[str, str]:
    if backend == "postgres":
        return {"DATABASE_URL": database_url, "HOOKS_OUTBOX_TABLE": f"ob_{uuid.uuid4().hex[:8]}"}
    return {}


async def deliver(http: aiohttp.ClientSession, base: str, identity_id: str) -> tuple[int, Any]:
    async with http.post(base + URL, json=jsonnet_payload(identity_id), headers=HEADER) as answer:
        return answer.status, await answer.json()


async def pending(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(base + "/health/ready") as response:
        return int((await response.json())["checks"]["hooks_outbox"]["pending"])


async def queued_in_broker(amqp_url: str, queue: str) -> int:
    """Messages the broker holds in ``queue``, read without consuming them."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True, passive=True)
        count = declared.declaration_result.message_count
        return 0 if count is None else int(count)
    finally:
        await connection.close()


class Counters:
    """Deltas of the publish metrics since ``Counters()`` was made. The services under test
    run in this process, so their registry is read directly — also before one has started."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> dict[str, float]:
        def value(name: str, **labels: str) -> float:
            return REGISTRY.get_sample_value(name, labels) or 0.0

        read = {r: value(PUBLISHES, result=r) for r in ("confirmed", "nacked", "unknown", "unsent")}
        read["late"] = value(LATE)
        read["takeover"] = value(TAKEOVERS, backend="postgres")
        return read

    def delta(self) -> dict[str, float]:
        return {k: v - self.start[k] for k, v in self._read().items() if v != self.start[k]}


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_deliveries_during_a_broker_stall_publish_each_event_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What a RabbitMQ memory alarm does: the connection stays open, nothing moves for a few
    # seconds, then everything flows — the confirms come, late.
    caplog.set_level(logging.INFO, logger="kratos_hooks.hooks.delivery")
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    svc = await hooks_service(
        RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"),
        HOOKS_BUDGET="2.0",
        **backend_env(backend, database_url),
    )
    counters = Counters()
    loop = asyncio.get_running_loop()
    broker.pause()
    stalled_at = loop.time()
    for _ in range(3):
        started = loop.time()
        assert await deliver(http, svc.internal_url, str(uuid.uuid4())) == (
            200,
            {"status": "queued"},
        )
        assert loop.time() - started < 2.0  # within the hook budget
        await asyncio.sleep(0.5)  # relay passes run in between
    await asyncio.sleep(max(0.0, stalled_at + STALL - loop.time()))
    assert await pending(http, svc.internal_url) == 3
    broker.resume()

    await consumer.drain(want=3, timeout=10, settle=2.0)
    assert sorted(copies(consumer).values()) == [1, 1, 1]
    assert await wait_until(lambda: _none_pending(http, svc.internal_url))
    assert counters.delta() == {"confirmed": 3, "late": 3}
    assert await metric_total(http, svc.internal_url, PUBLISHES, result="confirmed") >= 3
    late_lines = lines(caplog, "kratos_hooks.hooks.delivery", "late broker confirm")
    assert len(late_lines) == 3
    assert all(r.__dict__["waited_s"] >= 2.0 for r in late_lines)


async def _none_pending(http: aiohttp.ClientSession, base: str) -> bool:
    return await pending(http, base) == 0


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_cut_while_publishes_are_held_delivers_every_event_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Cut mid-confirm: the publishes left this process but the connection died before any
    # confirm. Their outcome is unknown; after the reconnect they are published again.
    caplog.set_level(logging.INFO, logger="kratos_hooks.hooks.delivery")
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    svc = await hooks_service(
        RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"), **backend_env(backend, database_url)
    )
    counters = Counters()
    broker.pause()
    for _ in range(3):
        assert (await deliver(http, svc.internal_url, str(uuid.uuid4())))[1] == {"status": "queued"}
    broker.cut()  # what the pause held dies with the connection
    await asyncio.sleep(0.5)
    broker.restore()

    await consumer.drain(want=3, timeout=15, settle=1.5)
    assert sorted(copies(consumer).values()) == [1, 1, 1]
    assert await wait_until(lambda: _none_pending(http, svc.internal_url))
    assert counters.delta() == {"unknown": 3, "confirmed": 3}
    assert len(lines(caplog, "kratos_hooks.hooks.delivery", "broker outcome unknown")) == 3


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_cut_after_the_broker_kept_the_event_delivers_it_at_most_twice_same_id(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    amqp_url: str,
    database_url: str,
    backend: str,
) -> None:
    # The documented exception, made to happen: the broker has the event, its confirm is
    # lost with the connection. Published again after the reconnect, the event reaches the
    # queue twice — with one message id, which is what a consumer de-duplicates on.
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    svc = await hooks_service(
        RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"), **backend_env(backend, database_url)
    )
    counters = Counters()
    identity_id = str(uuid.uuid4())
    broker.pause(up=False)  # requests reach the broker; its answers are held
    assert (await deliver(http, svc.internal_url, identity_id))[1] == {"status": "queued"}

    async def kept() -> bool:
        return await queued_in_broker(amqp_url, consumer.queue) == 1

    assert await wait_until(kept)
    broker.cut()
    await asyncio.sleep(0.3)
    broker.restore()

    await consumer.drain(want=2, timeout=15, settle=1.5)
    assert copies(consumer) == {message_id("USER_SIGN_UP_WELCOME", identity_id): 2}
    assert await wait_until(lambda: _none_pending(http, svc.internal_url))
    assert counters.delta() == {"unknown": 1, "confirmed": 1}


async def test_two_relays_on_one_postgres_outbox_publish_each_entry_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
) -> None:
    # Two replicas: 30 due entries appear in their shared table at once; both relays race
    # for them while every confirm is held for 3 s (late, not lost).
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    table = f"ob_{uuid.uuid4().hex[:8]}"
    env = {
        "RABBITMQ_URL": broker.url("amqp", "/", "guest:guest"),
        "DATABASE_URL": database_url,
        "HOOKS_OUTBOX_TABLE": table,
    }
    first = await hooks_service(**env)
    await hooks_service(**env)
    counters = Counters()
    writer = PostgresOutbox(database_url, table, owner="test-writer")
    await writer.start()
    broker.pause(up=False)
    try:
        ids = [str(uuid.uuid4()) for _ in range(30)]
        for identity_id in ids:
            assert await writer.put(event_entry(identity_id), reserve=True)
    finally:
        await writer.close()

    async def both_hold_claims() -> bool:
        return len(await claim_holders(database_url, table)) == 2

    assert await wait_until(both_hold_claims, timeout=2.5)  # disjoint batches, one per relay
    await asyncio.sleep(3.0)
    broker.resume()

    await consumer.drain(want=30, timeout=15, settle=2.0)
    expected = {message_id("USER_SIGN_UP_WELCOME", i): 1 for i in ids}
    assert copies(consumer) == expected
    assert await wait_until(lambda: _none_pending(http, first.internal_url))
    # The first claims (one batch per relay) waited the 3 s through; none was given up.
    delta = counters.delta()
    assert delta["confirmed"] == 30
    assert delta["late"] >= 10
    assert "unknown" not in delta
    assert "nacked" not in delta


async def claim_holders(dsn: str, table: str) -> dict[str, int]:
    """Who holds claims in the outbox table, and on how many entries."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT claimed_by, count(*) FROM "{table}"'
            " WHERE claimed_by IS NOT NULL AND delivered_at IS NULL GROUP BY claimed_by"
        )
    finally:
        await conn.close()
    return {r[0]: int(r[1]) for r in rows}


def event_entry(identity_id: str) -> Entry:
    """The outbox entry the verification hook records for ``identity_id``."""
    welcome = parse_welcome(jsonnet_payload(identity_id))
    assert not isinstance(welcome, str)
    pattern = "USER_SIGN_UP_WELCOME"
    body = envelope(welcome, pattern=pattern, platform_url="https://alkem.io")
    return Entry(
        f"event:{pattern}:{identity_id}",
        "event",
        {"message_id": message_id(pattern, identity_id), "body": body},
    )


async def test_a_crashed_replicas_claim_is_taken_over_and_published_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    amqp_url: str,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Replica A records the event (claimed), publishes into a stalled broker and is killed
    # before any confirm; what it sent dies with its connection. Replica B may publish the
    # entry only once A's lease has run out — and then does, once.
    caplog.set_level(logging.WARNING, logger="kratos_hooks.hooks.outbox")
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    table = f"ob_{uuid.uuid4().hex[:8]}"
    lease = 3.0
    shared = {
        "DATABASE_URL": database_url,
        "HOOKS_OUTBOX_TABLE": table,
        "HOOKS_CONFIRM_TIMEOUT": "1.5",
        "HOOKS_OUTBOX_LEASE": str(lease),
    }
    replica_a = ServiceProcess(
        {
            **shared,
            "RABBITMQ_URL": broker.url("amqp", "/", "guest:guest"),
            "HOOKS_API_KEYS": API_KEY,
            "HOOKS_QUEUE": consumer.queue,
            "HOOKS_PLATFORM_URL": "https://alkem.io",
            "HOOKS_PUBLISH_TIMEOUT": "0.5",
            "SPOOL_DIR": str(tmp_path / "spool-a"),
        }
    )
    await replica_a.start()
    identity_id = str(uuid.uuid4())
    try:
        assert await wait_until(lambda: _broker_ok(http, replica_a.internal_url))
        broker.pause()
        loop = asyncio.get_running_loop()
        recorded_at = loop.time()
        assert (await deliver(http, replica_a.internal_url, identity_id))[1] == {"status": "queued"}
    finally:
        replica_a.signal(signal.SIGKILL)
        await replica_a.wait()
    broker.cut()

    counters = Counters()
    replica_b = await hooks_service(**shared)  # straight to the broker
    assert await consumer.drain(want=0, timeout=0.5, settle=0.5) == []
    await consumer.drain(want=1, timeout=15, settle=1.5)
    assert loop.time() - recorded_at >= lease  # not before A's claim ran out
    assert copies(consumer) == {message_id("USER_SIGN_UP_WELCOME", identity_id): 1}
    assert await wait_until(lambda: _none_pending(http, replica_b.internal_url))
    assert counters.delta() == {"confirmed": 1, "takeover": 1}
    [line] = lines(caplog, "kratos_hooks.hooks.outbox", "outbox entry taken over")
    assert f":{replica_a.pid}:" in str(line.__dict__["previous_owner"])
    assert identity_id not in caplog.text


async def _broker_ok(http: aiohttp.ClientSession, base: str) -> bool:
    async with http.get(base + "/health/ready") as response:
        return bool((await response.json())["checks"]["rabbitmq"]["status"] == "ok")


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_a_stall_longer_than_the_confirm_timeout_remakes_the_connection(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The confirm wait is bounded: past HOOKS_CONFIRM_TIMEOUT the connection is given up and
    # the event published again on a new one. The abandoned connection still held the first
    # publish, and delivers it when the stall ends: the documented "at most twice, one id".
    caplog.set_level(logging.INFO, logger="kratos_hooks.hooks")
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    svc = await hooks_service(
        RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"),
        HOOKS_CONFIRM_TIMEOUT="1.0",
        HOOKS_OUTBOX_LEASE="10",
        **backend_env(backend, database_url),
    )
    counters = Counters()
    identity_id = str(uuid.uuid4())
    broker.pause()
    assert (await deliver(http, svc.internal_url, identity_id))[1] == {"status": "queued"}

    async def given_up() -> bool:
        return bool(lines(caplog, "kratos_hooks.hooks.publisher", "broker connection given up"))

    assert await wait_until(given_up, timeout=3.0)
    await asyncio.sleep(1.0)
    broker.resume()

    await consumer.drain(want=1, timeout=15, settle=2.0)
    seen = copies(consumer)
    assert set(seen) == {message_id("USER_SIGN_UP_WELCOME", identity_id)}
    assert seen.total() <= 2
    assert await wait_until(lambda: _none_pending(http, svc.internal_url))
    assert counters.delta() == {"unknown": 1, "confirmed": 1}
