"""Two replicas' decisions on each Redis topology (one server, Sentinel, Cluster): the session
cache shared, a logout seen by one replica's edge purging the other's memory over pub/sub
(on a Cluster: published on one node, heard on another), and rule rate limits counted once."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import aiohttp

from proxy.kernel.redis import close_client, make_client, publish
from proxy.kernel.sessions.cache import purge_channel
from tests.decisions.conftest import API, RULES, Decisions, DecisionsFactory, forwarded
from tests.support.metrics import metric_total

LIMITED = """
[[rules]]
id = "per-ip"
paths = ["/limited/**"]
authenticators = ["anonymous"]
authorizer = "allow"
rate_limit = { per_ip = 3, window_s = 60 }
"""
REDIS_ERRORS = "kratos_hooks_decisions_redis_errors_total"
PURGES = "kratos_hooks_decisions_session_purges_total"


async def decide(http: aiohttp.ClientSession, d: Decisions, uri: str, **headers: str) -> int:
    async with http.get(d.url, headers={**forwarded(uri), **API, **headers}) as response:
        await response.read()
        return response.status


async def pair(
    start_decisions: DecisionsFactory, url: str, prefix: str
) -> tuple[Decisions, Decisions]:
    env = {"REDIS_URL": url, "REDIS_KEY_PREFIX": prefix}
    return await start_decisions(**env), await start_decisions(**env)


async def listening(http: aiohttp.ClientSession, d: Decisions, url: str, prefix: str) -> None:
    """Until both replicas' purge listeners (started in the background) hear what is published
    on ``url``. Both run in this process, so they count into the same metric: one message
    heard by both counts twice."""
    client = make_client(url)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            before = await metric_total(http, d.service.internal_url, PURGES, origin="pubsub")
            # A key no session has: purging it changes nothing but the count.
            await publish(client, purge_channel(prefix), secrets.token_hex(32))
            await asyncio.sleep(0.1)
            heard = await metric_total(http, d.service.internal_url, PURGES, origin="pubsub")
            if heard - before >= 2:
                return
    finally:
        await close_client(client)
    raise AssertionError("the purge listeners never subscribed")


async def test_a_logout_through_one_replica_denies_the_session_on_the_other(
    start_decisions: DecisionsFactory,
    redis_topology_url: str,
    redis_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    a, b = await pair(start_decisions, redis_topology_url, redis_prefix)
    await listening(http, b, redis_topology_url, redis_prefix)
    errors = await metric_total(http, a.service.internal_url, REDIS_ERRORS)
    _, token, _ = a.user()
    session = {"X-Session-Token": token}
    assert await decide(http, a, "/app/x", **session) == 200
    assert await decide(http, b, "/app/x", **session) == 200  # from Redis: no Kratos call
    assert a.whoami_calls() == 1
    async with http.delete(
        a.service.public_url + "/self-service/logout/api", json={"session_token": token}
    ) as logout:
        assert logout.status == 204
    # B holds the session in its own memory: only the purge A published can deny it.
    # (Delivered asynchronously: on a Cluster through the cluster bus to B's node.)
    deadline = time.monotonic() + 1.0
    while await decide(http, b, "/app/x", **session) != 401:
        assert time.monotonic() < deadline, "the purge never reached the other replica"
        await asyncio.sleep(0.02)
    assert a.whoami_calls() == 1
    # (One registry for every service of this test process: the two replicas together.)
    assert await metric_total(http, a.service.internal_url, REDIS_ERRORS) == errors


async def test_rule_rate_limits_are_counted_once_across_replicas(
    start_decisions: DecisionsFactory,
    rules_file: Path,
    redis_topology_url: str,
    redis_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    rules_file.write_text(RULES + LIMITED)
    a, b = await pair(start_decisions, redis_topology_url, redis_prefix)
    errors = await metric_total(http, a.service.internal_url, REDIS_ERRORS)
    statuses = [await decide(http, (a, b)[i % 2], "/limited/x") for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert await metric_total(http, a.service.internal_url, REDIS_ERRORS) == errors
