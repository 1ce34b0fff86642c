"""The Redis connection and the one place Redis failures are translated.

One client per process (the composition root's ``Shared``), ``app[REDIS]`` on both apps; None
when ``REDIS_URL`` is not set — features then use their embedded in-process fallback (said at
start-up by ``server.announce_defaults``).

The client has no socket timeouts of its own: redis-py would run every write under
``asyncio.wait_for`` — a task per command, about 30 µs of CPU a call (measured ad hoc) on paths
such as the login guard's two calls per login. Instead every call is bounded here, by
``redis_call``, and every failure — refused, reset, silent past its bound, a script error —
leaves as one exception, ``RedisUnavailable``, for the feature's fail-open / fail-closed rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

# Every Redis call sits on a request path: a hung Redis must turn into the configured
# decision quickly, not into a hung login.
CALL_TIMEOUT = 0.5
FAILURES = (RedisError, OSError, asyncio.TimeoutError)

_T = TypeVar("_T")


class RedisUnavailable(Exception):
    """Redis could not answer (down, reset, silent for ``CALL_TIMEOUT``, refused a script)."""


def _describe(exc: BaseException) -> str:
    return type(exc).__name__


async def redis_call(call: Awaitable[_T], timeout: float = CALL_TIMEOUT) -> _T:
    """One round trip, bounded: a silent Redis is an unavailable one after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except FAILURES as exc:
        raise RedisUnavailable(_describe(exc)) from exc


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """The same translation for long-lived work that bounds itself (a pub/sub listener)."""
    try:
        yield
    except FAILURES as exc:
        raise RedisUnavailable(_describe(exc)) from exc


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


def make_client(url: str) -> aioredis.Redis:
    """A client of ``url``; connecting is bounded, each call by ``redis_call``."""
    return aioredis.from_url(
        url, socket_connect_timeout=CALL_TIMEOUT, health_check_interval=15, **_DRIVER
    )


def redis_probe(client: aioredis.Redis | None) -> Any:
    async def probe() -> dict[str, Any]:
        if client is None:
            return {"status": "embedded", "note": "in-memory store, single replica only"}
        # redis-py types ping for sync and async clients alike.
        await redis_call(cast(Awaitable[bool], client.ping()))
        return {"status": "ok"}

    return probe
