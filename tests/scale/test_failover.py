"""A Sentinel failover (``SENTINEL FAILOVER``) under a trickle of logins: no 5xx (the guard
fails open onto its in-process limiter for the calls the switch breaks), the backoff state
recorded before survives on the promoted replica, the service follows the new master within
a second and says so in its metrics and logs, and the logout-purge listener re-subscribes."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from tests.conftest import Kratos, ServiceFactory
from tests.guard.client import PASSWORD, api_flow, start, submit
from tests.support.metrics import metric_total
from tests.support.redis_topology import SentinelSet, client

LOGIN = "/self-service/login"
SETTINGS = {
    "TRUSTED_PROXIES": "127.0.0.1/32",
    "BACKOFF_PAIR_FREE": "3",
    "BACKOFF_PAIR_BASE": "30",
}
MASTER_CHANGES = "kratos_hooks_redis_master_changes_total"
STORE_ERRORS = "kratos_hooks_backoff_store_errors_total"
TRICKLE = 0.05  # seconds between two logins


@pytest.mark.slow
async def test_a_sentinel_failover_under_a_trickle_of_logins(
    failover_sentinel: SentinelSet,
    start_service: ServiceFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await start(start_service, kratos, failover_sentinel.url, redis_prefix, **SETTINGS)
    internal = svc.internal_url
    flow = await api_flow(http, svc.public_url)
    alice = {"forwarded_for": "198.51.100.1"}
    for _ in range(3):  # alice's pair bucket: its free failures, all used
        assert (
            await submit(http, svc.public_url, flow, "alice@example.com", **alice)
        ).status == 400
    await asyncio.sleep(0.2)  # the last failure is recorded after the answer (settling)
    with client(failover_sentinel.current_master()) as master:
        # Replication is asynchronous: make sure the replica has what it is to keep.
        assert master.execute_command("WAIT", 1, 2000) >= 1
    changes = await metric_total(http, internal, MASTER_CHANGES)
    errors = await metric_total(http, internal, STORE_ERRORS)

    answers: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def trickle() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            ip = f"203.0.113.{i % 250 + 1}"
            answer = await submit(http, svc.public_url, flow, f"u{i}@example.com", forwarded_for=ip)
            answers.append((time.monotonic(), answer.status))
            await asyncio.sleep(TRICKLE)

    load = asyncio.create_task(trickle())
    await asyncio.sleep(1.0)
    started = time.time()  # wall clock, as log records carry it
    await asyncio.to_thread(failover_sentinel.failover)
    promoted = time.time()  # the sentinel names the promoted replica
    await asyncio.sleep(2.0)
    recovered = await metric_total(http, internal, STORE_ERRORS)
    await asyncio.sleep(1.0)
    stop.set()
    await load

    statuses = [status for _, status in answers]
    assert len(statuses) > 40 and all(status < 500 for status in statuses)
    assert await metric_total(http, internal, MASTER_CHANGES) == changes + 1
    # Back on Redis: no store error in the last second of the trickle.
    after = await metric_total(http, internal, STORE_ERRORS)
    assert after == recovered
    # What alice's bucket held moved with the data to the promoted replica: still held.
    reached = kratos.state.count("POST", LOGIN)
    held = await submit(http, svc.public_url, flow, "alice@example.com", **alice)
    assert held.status == 400 and 20 <= int(held.headers["Retry-After"]) <= 30
    assert kratos.state.count("POST", LOGIN) == reached

    messages = [(r.created, r.getMessage()) for r in caplog.records]
    followed = [t for t, m in messages if m == "redis sentinel names a new master: reconnecting"]
    assert len(followed) == 1 and followed[0] - promoted < 1.0
    relistening = [t for t, m in messages if m.startswith("logout purge listener is back")]
    assert relistening and relistening[-1] >= followed[0]
    print(
        f"\nfailover: {len(statuses)} logins, none 5xx; SENTINEL FAILOVER took "
        f"{promoted - started:.2f} s, followed {followed[0] - started:.2f} s after it began; "
        f"guard store errors: {after - errors:.0f} (fail-open onto the in-process limiter)"
    )
