"""POST /hooks/kratos/verification against real RabbitMQ, Redis and Postgres."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
import redis.asyncio as aioredis

from config.hooks import HooksSettings
from tests.conftest import Kratos
from tests.hooks.conftest import HEADER, Consumer, HooksFactory, wait_until
from tests.support.metrics import metric_total
from tests.support.relay import FaultyRelay

URL = "/hooks/kratos/verification"
OUTBOX_ERRORS = "kratos_hooks_outbox_errors_total"


def jsonnet_payload(identity_id: str) -> dict[str, str]:
    """What the platform's existing Jsonnet template sends."""
    return {
        "identity_id": identity_id,
        "email": "  ada@example.org ",
        "display_name": "Ada Lovelace",
        "first_name": "Ada",
    }


def expected_envelope(identity_id: str) -> dict[str, Any]:
    user = {
        "id": identity_id,
        "firstName": "Ada",
        "lastName": "",
        "email": "ada@example.org",
        "profile": {
            "displayName": "Ada Lovelace",
            "url": f"https://alkem.io/user/{identity_id}",
        },
        "type": "user",
    }
    return {
        "pattern": "USER_SIGN_UP_WELCOME",
        "data": {
            "eventType": "USER_SIGN_UP_WELCOME",
            "triggeredBy": user,
            "recipients": [user],
            "platform": {"url": "https://alkem.io"},
            "user": user,
        },
    }


async def post(http: aiohttp.ClientSession, base: str, body: Any) -> tuple[int, Any]:
    async with http.post(base + URL, json=body, headers=HEADER) as response:
        return response.status, await response.json()


async def ready(http: aiohttp.ClientSession, base: str) -> tuple[int, Any]:
    async with http.get(base + "/health/ready") as response:
        return response.status, await response.json()


async def test_event_is_published_persistent_and_only_once(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    redis_url: str,
    redis_prefix: str,
) -> None:
    svc = await hooks_service(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    identity_id = str(uuid.uuid4())
    assert await post(http, svc.internal_url, jsonnet_payload(identity_id)) == (
        200,
        {"status": "published"},
    )
    assert await post(http, svc.internal_url, jsonnet_payload(identity_id)) == (
        200,
        {"status": "duplicate"},
    )
    bodies = await consumer.drain(want=1)
    assert bodies == [expected_envelope(identity_id)]
    message = consumer.messages[0]
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.message_id == str(
        uuid.uuid5(
            uuid.UUID("1f0f6a0e-6a4e-5d38-9c1e-6b7261746f73"), f"USER_SIGN_UP_WELCOME:{identity_id}"
        )
    )


async def test_whole_ctx_identity_is_accepted(
    hooks_service: HooksFactory, consumer: Consumer, http: aiohttp.ClientSession, kratos: Kratos
) -> None:
    svc = await hooks_service()
    identity = kratos.state.add_identity(
        "grace@example.org", "pw", traits={"name": {"first": "Grace", "last": "Hopper"}}
    )
    assert await post(http, svc.internal_url, identity) == (200, {"status": "published"})
    [body] = await consumer.drain(want=1)
    user = body["data"]["user"]
    assert user["id"] == identity["id"]
    assert user["firstName"] == "Grace"
    assert user["profile"]["displayName"] == "Grace Hopper"
    assert user["email"] == "grace@example.org"


async def test_concurrent_deliveries_publish_one_event(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    redis_url: str,
    redis_prefix: str,
    database_url: str,
) -> None:
    svc = await hooks_service(
        REDIS_URL=redis_url,
        REDIS_KEY_PREFIX=redis_prefix,
        DATABASE_URL=database_url,
        HOOKS_OUTBOX_TABLE=f"outbox_{uuid.uuid4().hex[:8]}",
    )
    identity_id = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(post(http, svc.internal_url, jsonnet_payload(identity_id)) for _ in range(12))
    )
    statuses = sorted(body["status"] for _, body in answers)
    assert {code for code, _ in answers} == {200}
    assert statuses == ["duplicate"] * 11 + ["published"]
    assert await consumer.drain(want=1, settle=1.0) == [expected_envelope(identity_id)]


async def test_two_replicas_with_local_spools_share_the_redis_reservation(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    redis_topology_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    """On one server, behind Sentinel and on a Cluster."""
    replicas = [
        await hooks_service(
            REDIS_URL=redis_topology_url,
            REDIS_KEY_PREFIX=redis_prefix,
            SPOOL_DIR=str(tmp_path / name),
        )
        for name in ("a", "b")
    ]
    identity_id = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(
            post(http, replica.internal_url, jsonnet_payload(identity_id))
            for _ in range(6)
            for replica in replicas
        )
    )
    assert sorted(b["status"] for _, b in answers) == ["duplicate"] * 11 + ["published"]
    assert await consumer.drain(want=1, settle=1.0) == [expected_envelope(identity_id)]


async def test_once_per_identity_holds_without_redis_on_postgres(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    database_url: str,
) -> None:
    svc = await hooks_service(
        DATABASE_URL=database_url, HOOKS_OUTBOX_TABLE=f"outbox_{uuid.uuid4().hex[:8]}"
    )
    identity_id = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(post(http, svc.internal_url, jsonnet_payload(identity_id)) for _ in range(6))
    )
    assert sorted(b["status"] for _, b in answers) == ["duplicate"] * 5 + ["published"]
    assert len(await consumer.drain(want=1)) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"identity_id": str(uuid.uuid4()), "email": "a@b.c", "first_name": "A"}, "display_name"),
        ({"identity_id": "nope", "email": "a@b.c", "display_name": "A", "first_name": "A"}, "UUID"),
        ([1, 2], "JSON object"),
    ],
)
async def test_incomplete_payload_is_skipped_with_200(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    body: Any,
    reason: str,
) -> None:
    svc = await hooks_service()
    status, answer = await post(http, svc.internal_url, body)
    assert status == 200
    assert answer["status"] == "skipped"
    assert reason in answer["reason"]
    async with http.get(svc.internal_url + "/metrics") as response:
        text = await response.text()
    assert 'kratos_hooks_hook_requests_total{hook="verification",outcome="skipped"}' in text
    assert await consumer.drain(want=0, timeout=0.3, settle=0.3) == []


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_broker_outage_goes_to_outbox_and_is_delivered_once_when_back(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kratos_hooks.hooks.relay")
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    env = {"RABBITMQ_URL": broker.url("amqp", "/", "guest:guest")}
    if backend == "postgres":
        env |= {"DATABASE_URL": database_url, "HOOKS_OUTBOX_TABLE": f"ob_{uuid.uuid4().hex[:8]}"}
    svc = await hooks_service(**env)

    async def broker_ok() -> bool:
        return (await ready(http, svc.internal_url))[1]["checks"]["rabbitmq"]["status"] == "ok"

    assert await wait_until(broker_ok)
    broker.cut()
    identity_id = str(uuid.uuid4())
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await post(http, svc.internal_url, jsonnet_payload(identity_id)) == (
        200,
        {"status": "queued"},
    )
    assert loop.time() - started < 2.0
    status, report = await ready(http, svc.internal_url)
    assert status == 200
    assert report["status"] == "degraded"
    assert report["checks"]["hooks_outbox"]["pending"] == 1
    assert report["checks"]["hooks_outbox"]["backend"] == backend
    async with http.get(svc.internal_url + "/metrics") as response:
        assert 'kratos_hooks_outbox_depth{kind="event"} 1.0' in await response.text()
    assert await consumer.drain(want=0, timeout=0.5, settle=0.5) == []

    broker.restore()
    assert await consumer.drain(want=1, timeout=15) == [expected_envelope(identity_id)]

    async def drained() -> bool:
        return (await ready(http, svc.internal_url))[1]["checks"]["hooks_outbox"]["pending"] == 0

    assert await wait_until(drained)
    relay_lines = [r for r in caplog.records if r.name == "kratos_hooks.hooks.relay"]
    messages = [r.getMessage() for r in relay_lines]
    assert messages[0] == "outbox relay waiting for a dependency"
    assert relay_lines[0].__dict__["reason"] == "broker: not connected"
    assert messages[-1] == "outbox relay resumed"
    assert len(messages) <= 4  # per change of cause, never once per backed-off pass
    # Delivered exactly once, and remembered: a late retry by Kratos publishes nothing.
    assert (await post(http, svc.internal_url, jsonnet_payload(identity_id)))[1] == {
        "status": "duplicate"
    }
    assert await consumer.drain(want=1, settle=0.8) == [expected_envelope(identity_id)]


DEFAULTS = HooksSettings()


@pytest.mark.parametrize(
    ("fault", "publish_timeout"),
    [
        ("stall", DEFAULTS.publish_timeout),  # the open connection goes silent
        ("hang", DEFAULTS.publish_timeout),  # dropped, and every reconnect goes silent
        ("stall", 10.0),  # a confirm wait longer than the budget: the budget wins
    ],
)
async def test_broker_that_accepts_but_never_answers_still_gets_a_quick_200(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    fault: str,
    publish_timeout: float,
) -> None:
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    svc = await hooks_service(
        RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"),
        HOOKS_BUDGET=str(DEFAULTS.budget),
        HOOKS_PUBLISH_TIMEOUT=str(publish_timeout),
    )
    broker.stall() if fault == "stall" else broker.hang()
    identity_id = str(uuid.uuid4())
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await post(http, svc.internal_url, jsonnet_payload(identity_id))
    elapsed = loop.time() - started
    assert answer == (200, {"status": "queued"})
    assert elapsed < DEFAULTS.budget, f"Kratos waited {elapsed:.2f}s"
    status, report = await ready(http, svc.internal_url)
    assert status == 200
    assert report["checks"]["hooks_outbox"]["pending"] == 1
    # The relay keeps trying into the silent broker meanwhile: nothing may get through.
    assert await consumer.drain(want=0, timeout=1.5, settle=1.5) == []

    broker.restore()
    assert await consumer.drain(want=1, timeout=20) == [expected_envelope(identity_id)]

    async def drained() -> bool:
        return (await ready(http, svc.internal_url))[1]["checks"]["hooks_outbox"]["pending"] == 0

    assert await wait_until(drained)
    assert (await post(http, svc.internal_url, jsonnet_payload(identity_id)))[1] == {
        "status": "duplicate"
    }
    assert await consumer.drain(want=1, settle=1.0) == [expected_envelope(identity_id)]


async def test_database_down_keeps_the_event_in_the_local_spool(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg: FaultyRelay = await relay_to("127.0.0.1", 5432)
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    svc = await hooks_service(
        DATABASE_URL=database_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg.port}"),
        HOOKS_OUTBOX_TABLE=f"ob_{uuid.uuid4().hex[:8]}",
        RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"),
    )
    pg.cut()
    broker.cut()
    before = await metric_total(http, svc.internal_url, OUTBOX_ERRORS, backend="postgres")
    caplog.set_level(logging.WARNING, logger="kratos_hooks.hooks")
    identity_id = str(uuid.uuid4())
    assert await post(http, svc.internal_url, jsonnet_payload(identity_id)) == (
        200,
        {"status": "queued"},
    )
    assert await metric_total(http, svc.internal_url, OUTBOX_ERRORS, backend="postgres") > before
    assert "outbox database unavailable: entry kept in the local spool" in [
        r.getMessage() for r in caplog.records if r.name.startswith("kratos_hooks")
    ]
    assert await post(http, svc.internal_url, jsonnet_payload(identity_id)) == (
        200,
        {"status": "duplicate"},
    )
    broker.restore()  # the database stays down: the relay drains the spool anyway
    assert await consumer.drain(want=1, timeout=15, settle=1.0) == [expected_envelope(identity_id)]
    pg.restore()
    # Remembered across the two stores: no second event.
    assert (await post(http, svc.internal_url, jsonnet_payload(identity_id)))[1] == {
        "status": "duplicate"
    }
    assert len(await consumer.drain(want=1, settle=0.5)) == 1


async def test_no_durable_store_answers_503_and_gives_the_reservation_back(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    redis_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    svc = await hooks_service(
        SPOOL_DIR=str(blocker / "spool"), REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix
    )
    identity_id = str(uuid.uuid4())
    status, body = await post(http, svc.internal_url, jsonnet_payload(identity_id))
    assert status == 503  # Kratos retries: the event is not silently dropped
    assert body["error"]["code"] == 503
    async with http.get(svc.internal_url + "/health/ready") as response:
        assert response.status == 200
    # The reservation was given back: a retry once storage works is not a "duplicate".
    async with aioredis.from_url(redis_url) as client:
        assert [k async for k in client.scan_iter(match=f"{redis_prefix}*")] == []
    assert await consumer.drain(want=0, timeout=0.3, settle=0.3) == []


async def test_redis_down_leaves_the_outbox_key_as_the_once_per_identity_guard(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis: FaultyRelay = await relay_to("127.0.0.1", 6379)
    svc = await hooks_service(REDIS_URL=redis.url("redis", "/0"), REDIS_KEY_PREFIX=redis_prefix)
    redis.cut()
    errors = "kratos_hooks_reservation_errors_total"
    before = await metric_total(http, svc.internal_url, errors, operation="reserve")
    caplog.set_level(logging.WARNING, logger="kratos_hooks.hooks.reservation")
    identity_id = str(uuid.uuid4())
    assert await post(http, svc.internal_url, jsonnet_payload(identity_id)) == (
        200,
        {"status": "published"},
    )
    assert (await post(http, svc.internal_url, jsonnet_payload(identity_id)))[1] == {
        "status": "duplicate"
    }
    assert await metric_total(http, svc.internal_url, errors, operation="reserve") == before + 1
    reservations = [r for r in caplog.records if r.name == "kratos_hooks.hooks.reservation"]
    assert [r.getMessage() for r in reservations] == ["reservation store unavailable"]
    assert await consumer.drain(want=1, settle=0.5) == [expected_envelope(identity_id)]
