"""The Redis connection: one client per app, made and closed by its own cleanup_ctx.

``app[REDIS]`` is None when ``REDIS_URL`` is not set; features then use their embedded
in-process fallback (said at start-up by ``server.announce_defaults``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import redis.asyncio as aioredis
from aiohttp import web

from proxy.kernel.kernel_keys import REDIS, SETTINGS

# Short timeouts: every Redis call sits on a request path, and a hung Redis must turn into
# the configured fail-open / fail-closed decision quickly, not into a hung login.
SOCKET_TIMEOUT = 0.5


def _driver_kwargs() -> dict[str, Any]:
    # Read once at import: redis-py would otherwise stat site-packages (a blocking call) in
    # the event loop for every new connection, to report its version to the server.
    version = importlib.metadata.version("redis")
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # redis-py < 7.1
        return {"lib_version": version}
    return {"driver_info": DriverInfo(lib_version=version)}


_DRIVER = _driver_kwargs()


def make_client(url: str, *, socket_timeouts: bool = True) -> aioredis.Redis:
    """A client of ``url``.

    ``socket_timeouts=False`` is for a caller that bounds each call itself with one
    ``asyncio.timeout``: redis-py's own socket timeout runs every write in
    ``asyncio.wait_for`` — a task per command — which cost about 30 µs of CPU per call
    (measured ad hoc; the login guard makes two calls per login).
    """
    return aioredis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT if socket_timeouts else None,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=15,
        **_DRIVER,
    )


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].store.redis_url
    app[REDIS] = make_client(url) if url else None
    yield
    client = app[REDIS]
    if client is not None:
        await client.aclose()


def redis_probe(app: web.Application) -> Any:
    async def probe() -> dict[str, Any]:
        client = app[REDIS]
        if client is None:
            return {"status": "embedded", "note": "in-memory store, single replica only"}
        await cast(Awaitable[bool], client.ping())  # redis-py types ping for sync and async
        return {"status": "ok"}

    return probe
