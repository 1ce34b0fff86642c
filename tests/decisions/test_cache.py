"""The session cache seen from outside: Kratos calls saved, logouts honoured, outages survived."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from proxy.kernel.sessions.cache import purge_channel
from proxy.kernel.sessions.whoami import credential_key
from tests.conftest import Kratos
from tests.decisions.conftest import API, Decisions, DecisionsFactory, forwarded
from tests.support.metrics import metric_total
from tests.support.relay import FaultyRelay

COOKIE = "ory_kratos_session"
REDIS_ERRORS = "kratos_hooks_decisions_redis_errors_total"
WHOAMI = "kratos_hooks_decisions_whoami_total"
RelayFactory = Callable[[str, int], Awaitable[FaultyRelay]]


async def status(http: aiohttp.ClientSession, d: Decisions, **headers: str) -> int:
    async with http.get(d.url, headers={**forwarded("/app/x"), **API, **headers}) as response:
        await response.read()
        return response.status


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_one_kratos_call_per_session_within_the_ttl(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, token, _ = decisions.user()
    for _ in range(20):
        assert await status(http, decisions, **{"X-Session-Token": token}) == 200
    assert decisions.whoami_calls() == 1


async def test_concurrent_identical_lookups_share_one_kratos_call(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, _, cookie = decisions.user()
    results = await asyncio.gather(
        *(status(http, decisions, Cookie=f"{COOKIE}={cookie}") for _ in range(100))
    )
    assert results == [200] * 100
    assert decisions.whoami_calls() == 1


async def test_cache_never_outlives_the_session(
    start_decisions: DecisionsFactory, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions()
    kratos.state.session_lifespan = timedelta(seconds=1.5)
    _, token, _ = d.user()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    await asyncio.sleep(1.7)
    assert await status(http, d, **{"X-Session-Token": token}) == 401
    assert d.whoami_calls() == 2  # asked again once the session's own expiry passed


async def test_invalid_credentials_are_remembered_briefly(
    start_decisions: DecisionsFactory, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions(DECISIONS_NEGATIVE_CACHE_TTL="1")
    for _ in range(5):
        assert await status(http, d, Cookie=f"{COOKIE}=forged") == 401
    assert d.whoami_calls() == 1
    await asyncio.sleep(1.1)
    assert await status(http, d, Cookie=f"{COOKIE}=forged") == 401
    assert d.whoami_calls() == 2


async def test_replicas_share_sessions_through_redis(
    start_decisions: DecisionsFactory,
    redis_url: str,
    redis_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    a = await start_decisions(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    b = await start_decisions(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)
    _, token, _ = a.user()
    assert await status(http, a, **{"X-Session-Token": token}) == 200
    assert await status(http, b, **{"X-Session-Token": token}) == 200
    assert a.whoami_calls() == 1
    client = aioredis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{redis_prefix}*")]
    finally:
        await client.aclose()
    assert keys and all(token.encode() not in key for key in keys)  # never the credential


async def test_api_logout_through_the_proxy_closes_the_window(
    decisions_redis: Decisions, http: aiohttp.ClientSession
) -> None:
    d = decisions_redis
    _, token, _ = d.user()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    async with http.delete(
        d.service.public_url + "/self-service/logout/api",
        json={"session_token": token},
    ) as logout:
        assert logout.status == 204
    calls = d.whoami_calls()
    assert await status(http, d, **{"X-Session-Token": token}) == 401
    assert d.whoami_calls() == calls  # the purge answered, not an expired entry


@pytest.mark.parametrize(
    "path",
    ["//self-service/logout/api", "/self-service/./logout/api", "/self-service%2Flogout/api"],
)
async def test_a_logout_by_any_path_kratos_routes_there_closes_the_window(
    decisions_redis: Decisions, http: aiohttp.ClientSession, path: str
) -> None:
    d = decisions_redis
    _, token, _ = d.user()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    async with http.delete(
        URL(d.service.public_url + path, encoded=True), json={"session_token": token}
    ) as logout:
        assert logout.status == 204  # Kratos cleaned the path and logged the session out
    assert await status(http, d, **{"X-Session-Token": token}) == 401


async def test_browser_logout_through_the_proxy_closes_the_window(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, _, cookie = decisions.user()
    assert await status(http, decisions, Cookie=f"{COOKIE}={cookie}") == 200
    session = decisions.kratos.state.session_by_cookie(cookie)
    assert session is not None
    async with http.get(
        decisions.service.public_url + f"/self-service/logout?token={session.logout_token}",
        headers={"Cookie": f"{COOKIE}={cookie}"},
        allow_redirects=False,
    ) as logout:
        assert logout.status == 303
    assert await status(http, decisions, Cookie=f"{COOKIE}={cookie}") == 401


async def test_failed_logout_purges_nothing(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, token, _ = decisions.user()
    assert await status(http, decisions, **{"X-Session-Token": token}) == 200
    async with http.delete(
        decisions.service.public_url + "/self-service/logout/api",
        json={"session_token": "ory_st_unknown"},
    ) as logout:
        assert logout.status == 403
    assert await status(http, decisions, **{"X-Session-Token": token}) == 200


async def test_an_oversized_logout_body_is_refused_unforwarded(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, token, _ = decisions.user()
    async with http.delete(
        decisions.service.public_url + "/self-service/logout/api",
        json={"session_token": token, "pad": "x" * 70_000},
    ) as logout:
        assert logout.status == 413
        assert (await logout.json())["error"]["code"] == 413
    assert decisions.kratos.state.count("DELETE", "/self-service/logout/api") == 0
    assert await status(http, decisions, **{"X-Session-Token": token}) == 200  # still signed in


async def test_other_replicas_hear_the_purge(
    decisions_redis: Decisions, redis_url: str, redis_prefix: str, http: aiohttp.ClientSession
) -> None:
    """A logout seen by another process's edge proxy arrives only over Redis pub/sub."""
    d = decisions_redis
    _, token, _ = d.user()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    client = aioredis.from_url(redis_url)
    try:

        async def purged() -> bool:
            await client.publish(purge_channel(redis_prefix), credential_key(token))
            return await status(http, d, **{"X-Session-Token": token}) == 401

        assert await eventually(purged)
    finally:
        await client.aclose()
    assert d.whoami_calls() == 1  # Kratos still says valid: only the purge can deny


async def test_redis_outage_falls_back_to_kratos(
    start_decisions: DecisionsFactory,
    relay_to: RelayFactory,
    redis_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    relay = await relay_to("127.0.0.1", 6379)
    d = await start_decisions(REDIS_URL=relay.url("redis", "/0"), REDIS_KEY_PREFIX=redis_prefix)
    _, token, _ = d.user()
    relay.cut()
    started = time.monotonic()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    assert await status(http, d, Cookie=f"{COOKIE}=forged") == 401
    assert time.monotonic() - started < 3
    relay.restore()


async def test_kratos_unreachable_is_a_503(
    start_decisions: DecisionsFactory, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions()
    _, token, _ = d.user()
    await kratos.public.close()
    assert await status(http, d, **{"X-Session-Token": token}) == 503


async def test_kratos_timing_out_is_a_503(
    start_decisions: DecisionsFactory,
    kratos: Kratos,
    relay_to: RelayFactory,
    http: aiohttp.ClientSession,
) -> None:
    port = kratos.public.port
    assert port is not None
    relay = await relay_to("127.0.0.1", port)
    d = await start_decisions(KRATOS_PUBLIC_URL=relay.url("http"), DECISIONS_WHOAMI_TIMEOUT="0.3")
    _, token, _ = d.user()
    relay.hang()
    assert await status(http, d, **{"X-Session-Token": token}) == 503
    relay.restore()
    assert await status(http, d, **{"X-Session-Token": token}) == 200  # errors are not cached


async def test_purges_missed_during_a_redis_outage_are_caught_up(
    start_decisions: DecisionsFactory,
    relay_to: RelayFactory,
    redis_url: str,
    redis_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    relay = await relay_to("127.0.0.1", 6379)
    d = await start_decisions(REDIS_URL=relay.url("redis", "/0"), REDIS_KEY_PREFIX=redis_prefix)
    _, token, _ = d.user()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    relay.cut()
    # Another replica sees the logout while this one cannot hear it: it writes the marker and
    # publishes into the void.
    key = credential_key(token)
    marker = b'{"v":"invalid","s":null,"e":%d,"p":true}' % (time.time() + 60)
    client = aioredis.from_url(redis_url)
    try:
        await client.set(f"{redis_prefix}decisions:session:{key}", marker, px=60_000)
        await client.publish(purge_channel(redis_prefix), key)
    finally:
        await client.aclose()
    relay.restore()

    async def logged_out() -> bool:
        return await status(http, d, **{"X-Session-Token": token}) == 401

    assert await eventually(logged_out, timeout=10)


async def test_logout_during_a_redis_outage_still_closes_this_replicas_window(
    start_decisions: DecisionsFactory,
    relay_to: RelayFactory,
    redis_prefix: str,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = await relay_to("127.0.0.1", 6379)
    d = await start_decisions(REDIS_URL=relay.url("redis", "/0"), REDIS_KEY_PREFIX=redis_prefix)
    _, token, _ = d.user()
    assert await status(http, d, **{"X-Session-Token": token}) == 200
    relay.cut()
    before = await metric_total(http, d.service.internal_url, REDIS_ERRORS)
    caplog.set_level(logging.WARNING, logger="kratos_hooks.decisions")
    async with http.delete(
        d.service.public_url + "/self-service/logout/api", json={"session_token": token}
    ) as logout:
        assert logout.status == 204  # Kratos' answer is relayed whatever Redis does
    assert await status(http, d, **{"X-Session-Token": token}) == 401
    assert await metric_total(http, d.service.internal_url, REDIS_ERRORS) > before
    assert "logout purge not shared with other replicas" in [
        r.getMessage() for r in caplog.records if r.name == "kratos_hooks.decisions"
    ]


async def test_kratos_answering_5xx_is_a_503_counted_and_logged(
    start_decisions: DecisionsFactory,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": 500}}, status=500)

    app = web.Application()
    app.router.add_get("/sessions/whoami", broken)
    kratos = TestServer(app, host="127.0.0.1")
    await kratos.start_server()
    try:
        d = await start_decisions(KRATOS_PUBLIC_URL=str(kratos.make_url("")).rstrip("/"))
        errors = {"result": "error"}
        before = await metric_total(http, d.service.internal_url, WHOAMI, **errors)
        caplog.set_level(logging.WARNING, logger="kratos_hooks.decisions")
        assert await status(http, d, **{"X-Session-Token": "ory_st_anything"}) == 503
        assert await metric_total(http, d.service.internal_url, WHOAMI, **errors) == before + 1
        ours = [r for r in caplog.records if r.name == "kratos_hooks.decisions"]
        failures = [r for r in ours if r.getMessage() == "kratos whoami failed"]
        assert [r.__dict__.get("http_status") for r in failures] == [500]
    finally:
        await kratos.close()
