"""Redis outages, fail-closed, and the embedded in-memory store, through the real listeners."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from proxy.kernel.redis import CALL_TIMEOUT
from tests.conftest import Kratos, Service, ServiceFactory
from tests.guard.client import (
    PASSWORD,
    api_flow,
    browser_flow,
    fetch_flow,
    lockout_messages,
    start,
    submit,
)
from tests.guard.conftest import Guarded
from tests.support.metrics import metric_total
from tests.support.relay import FaultyRelay

LOGIN = "/self-service/login"
RelayTo = Callable[[str, int], Awaitable[FaultyRelay]]


Relayed = Callable[..., Awaitable[tuple[FaultyRelay, Service]]]


@pytest.fixture
def redis_relayed(
    kratos: Kratos, start_service: ServiceFactory, relay_to: RelayTo, redis_prefix: str
) -> Relayed:
    """Starts the service with its Redis behind a fault-injecting relay (``**env`` on top)."""

    async def make(**env: str) -> tuple[FaultyRelay, Service]:
        relay = await relay_to("127.0.0.1", 6379)
        svc = await start(start_service, kratos, relay.url("redis", "/0"), redis_prefix, **env)
        return relay, svc

    return make


async def store_errors(http: aiohttp.ClientSession, internal_url: str) -> float:
    async with http.get(f"{internal_url}/metrics") as response:
        text = (await response.read()).decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("kratos_hooks_backoff_store_errors_total{")
    )


async def test_redis_cut_mid_test_fails_open_onto_the_in_process_limiter(
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_relayed: Relayed,
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    relay, svc = await redis_relayed(BACKOFF_PAIR_FREE="3")
    flow = await api_flow(http, svc.public_url)
    for _ in range(2):
        await submit(http, svc.public_url, flow, "alice@example.com")
    before = await store_errors(http, svc.internal_url)

    relay.cut()
    ok = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)
    assert ok.status == 200  # login keeps working without Redis
    answers = [await submit(http, svc.public_url, flow, "bob@example.com") for _ in range(5)]
    assert [bool(lockout_messages(a.json())) for a in answers] == [False] * 3 + [True] * 2
    assert kratos.state.count("POST", LOGIN) == 2 + 1 + 3
    assert await store_errors(http, svc.internal_url) > before

    relay.restore()
    # Back on Redis, which still remembers alice's two failures on this address.
    await submit(http, svc.public_url, flow, "alice@example.com")
    assert lockout_messages((await submit(http, svc.public_url, flow, "alice@example.com")).json())


async def test_a_silent_redis_costs_a_login_one_bounded_wait_then_fails_open(
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_relayed: Relayed,
) -> None:
    # Connections stay open and nothing comes back: only the store's own per-call bound
    # (its client has no socket timeouts) turns that into an outage.
    kratos.state.add_identity("alice@example.com", PASSWORD)
    relay, svc = await redis_relayed()
    flow = await api_flow(http, svc.public_url)
    assert (await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)).status == 200
    before = await store_errors(http, svc.internal_url)

    relay.stall()
    started = time.monotonic()
    ok = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)
    waited = time.monotonic() - started
    assert ok.status == 200  # fail-open, onto the in-process limiter
    assert CALL_TIMEOUT - 0.05 <= waited < CALL_TIMEOUT + 2  # timers may fire 1 ms early
    assert await store_errors(http, svc.internal_url) > before
    assert kratos.state.count("POST", LOGIN) == 2
    relay.restore()


async def test_fail_closed_answers_503_in_the_callers_format(
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_relayed: Relayed,
) -> None:
    relay, svc = await redis_relayed(BACKOFF_FAIL_CLOSED="true")
    flow = await browser_flow(http, svc.public_url)
    relay.cut()
    as_json = await submit(http, svc.public_url, flow, "alice@example.com")
    assert as_json.status == 503
    assert as_json.json()["error"]["code"] == 503
    assert as_json.headers["Retry-After"]
    page = await submit(http, svc.public_url, flow, "alice@example.com", form=True)
    assert page.status == 503 and page.headers["Content-Type"].startswith("text/html")
    assert kratos.state.count("POST", LOGIN) == 0


async def test_without_redis_the_in_memory_store_guards_and_is_shared_by_both_listeners(
    kratos: Kratos,
    start_service: ServiceFactory,
    http: aiohttp.ClientSession,
) -> None:
    svc = await start(start_service, kratos, None, "kh:", BACKOFF_PAIR_FREE="2", HOOKS_API_KEYS="k")
    flow = await api_flow(http, svc.public_url)
    for _ in range(2):
        await submit(http, svc.public_url, flow, "alice@example.com")
    blocked = await submit(http, svc.public_url, flow, "alice@example.com")
    assert lockout_messages(blocked.json())
    assert kratos.state.count("POST", LOGIN) == 2
    url = f"{svc.internal_url}/hooks/kratos/login-backoff/before-login"
    body = {"identifier": "ALICE@example.com", "client_ip": "127.0.0.1"}
    async with http.post(url, json=body, headers={"X-Kratos-Hooks-Key": "k"}) as response:
        assert response.status == 403
        assert (await response.json())["reason"] == "identifier"


async def test_kratos_unreachable_or_silent_is_not_counted(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    relay_to: RelayTo,
) -> None:
    host, port = kratos.public_url.removeprefix("http://").split(":")
    relay = await relay_to(host, int(port))
    svc = await guarded(
        BACKOFF_PAIR_FREE="1",
        UPSTREAM_READ_TIMEOUT="0.3",
    )
    flow = await api_flow(http, svc.public_url)
    # Point the proxy at the relay only for the submissions (the flow came directly).
    svc2 = await guarded(
        KRATOS_PUBLIC_URL=relay.url("http"),
        BACKOFF_PAIR_FREE="1",
        UPSTREAM_READ_TIMEOUT="0.3",
    )
    relay.cut()
    statuses = [
        (await submit(http, svc2.public_url, flow, "alice@example.com")).status for _ in range(3)
    ]
    relay.hang()
    statuses.append((await submit(http, svc2.public_url, flow, "alice@example.com")).status)
    assert statuses == [502, 502, 502, 504]
    # Nothing was counted and no place stayed held: the one free attempt is still there.
    assert (await submit(http, svc.public_url, flow, "alice@example.com")).status == 400
    assert kratos.state.count("POST", LOGIN) == 1


async def test_without_a_secret_one_is_generated_and_the_operator_warned(
    guarded: Guarded,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kratos_hooks.guard")
    svc = await guarded(BACKOFF_SECRET="", BACKOFF_PAIR_FREE="1")
    assert any("BACKOFF_SECRET is not set" in r.getMessage() for r in caplog.records)
    flow = await api_flow(http, svc.public_url)
    await submit(http, svc.public_url, flow, "ivan@example.com")
    assert lockout_messages((await submit(http, svc.public_url, flow, "ivan@example.com")).json())


async def test_flow_fetch_during_an_outage_passes_through_counted_and_logged(
    http: aiohttp.ClientSession,
    redis_relayed: Relayed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay, svc = await redis_relayed()
    flow = await api_flow(http, svc.public_url)
    before = await store_errors(http, svc.internal_url)
    caplog.set_level(logging.WARNING, logger="kratos_hooks.guard")
    relay.cut()
    answer = await fetch_flow(http, svc.public_url, flow)
    assert answer.status == 200 and answer.json()["id"] == flow.id  # fail-open: Kratos' flow
    assert await store_errors(http, svc.internal_url) > before
    outages = [r for r in caplog.records if r.getMessage() == "backoff store unavailable"]
    assert [r.__dict__["operation"] for r in outages] == ["flow"]


async def test_lockout_answer_without_kratos_is_kratos_shaped_counted_and_logged(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    relay_to: RelayTo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, port = kratos.public_url.removeprefix("http://").split(":")
    relay = await relay_to(host, int(port))
    env = {"KRATOS_PUBLIC_URL": relay.url("http"), "BACKOFF_PAIR_FREE": "1"}
    svc = await guarded(**env)
    flow = await api_flow(http, svc.public_url)
    await submit(http, svc.public_url, flow, "alice@example.com")  # the one free failure
    before = await metric_total(http, svc.internal_url, "kratos_hooks_upstream_errors_total")
    caplog.set_level(logging.WARNING, logger="kratos_hooks.guard")
    relay.cut()
    blocked = await submit(http, svc.public_url, flow, "alice@example.com")
    assert blocked.status == 429 and blocked.headers["Retry-After"]
    assert blocked.json()["error"]["id"] == "login_backoff"  # no flow to show: the error shape
    after = await metric_total(http, svc.internal_url, "kratos_hooks_upstream_errors_total")
    assert after == before + 1
    assert [r.getMessage() for r in caplog.records if r.name == "kratos_hooks.guard"] == [
        "flow unavailable for a lockout answer"
    ]
