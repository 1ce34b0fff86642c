"""The Redis connection and the one place Redis failures are translated.

One client per process (the composition root's ``Shared``), ``app[REDIS]`` on both apps; None
when ``REDIS_URL`` is not set — features then use their embedded in-process fallback (said at
start-up by ``server.announce_defaults``). ``REDIS_URL`` names one server, a Sentinel-managed
master or a Cluster (``config.redis_url``); ``make_client`` makes redis-py's own client for
each — a ``Redis`` on a Sentinel-managed pool (which asks the sentinels for the master
every second and reconnects when they name another: ``redis_sentinel``), or a ``RedisCluster``
(which follows MOVED / ASK redirects and re-reads the slot map). Features see one
``RedisClient`` and use commands both kinds share; the few operations a Cluster spells
differently live here: ``publish``, ``subscribe`` and ``scan_keys``.

The client has no socket timeouts of its own: redis-py would run every write under
``asyncio.wait_for`` — a task per command, about 30 µs of CPU a call (measured ad hoc) on paths
such as the login guard's two calls per login. Instead every call is bounded here, by
``redis_call``, and every failure — refused, reset, silent past its bound, a script error, a
failover in progress — leaves as one exception, ``RedisUnavailable``, for the feature's
fail-open / fail-closed rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import random
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeAlias, TypeVar, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from config.redis_url import RedisTarget, parse_redis_url
from proxy.kernel.redis_sentinel import FollowingSentinelPool

# Every Redis call sits on a request path: a hung Redis must turn into the configured
# decision quickly, not into a hung login.
CALL_TIMEOUT = 0.5
# hiredis' error reply: a script the server refused (the lean pipe's, ``redis_pipe``).
FAILURES = (RedisError, OSError, asyncio.TimeoutError, hiredis.ReplyError)
HEALTH_CHECK_INTERVAL = 15

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

_T = TypeVar("_T")


class RedisUnavailable(Exception):
    """Redis could not answer (down, reset, silent for ``CALL_TIMEOUT``, refused a script)."""


def unavailable(exc: BaseException) -> RedisUnavailable:
    """The translation of one of ``FAILURES`` (for a call bounded by its own means, such as
    the lean pipe's): raise it ``from exc``."""
    return RedisUnavailable(type(exc).__name__)


async def redis_call(call: Awaitable[_T], timeout: float = CALL_TIMEOUT) -> _T:
    """One round trip, bounded: a silent Redis is an unavailable one after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except FAILURES as exc:
        raise unavailable(exc) from exc


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """The same translation for long-lived work that bounds itself (a pub/sub listener)."""
    try:
        yield
    except FAILURES as exc:
        raise unavailable(exc) from exc


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


def _credentials(username: str | None, password: str | None) -> dict[str, Any]:
    # Only what is set: a server without a password refuses an AUTH.
    found = {"username": username, "password": password}
    return {name: value for name, value in found.items() if value is not None}


def _sentinel_client(target: RedisTarget, connection: dict[str, Any]) -> aioredis.Redis:
    tls = {"ssl": True} if target.tls else {}
    # The sentinels are asked only when a connection is made: a socket timeout there costs
    # nothing on the request path and keeps a silent sentinel from holding a reconnection.
    sentinel_kwargs = {
        "socket_timeout": CALL_TIMEOUT,
        "socket_connect_timeout": CALL_TIMEOUT,
        **_credentials(target.sentinel_username, target.sentinel_password),
        **tls,
        **_DRIVER,
    }
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes),
        sentinel_kwargs=sentinel_kwargs,
        **connection,
        **_credentials(target.username, target.password),
        **tls,
    )
    client = sentinel.master_for(
        target.service, db=target.db, connection_pool_class=FollowingSentinelPool
    )
    return cast(aioredis.Redis, client)


def _cluster_client(target: RedisTarget, connection: dict[str, Any]) -> RedisCluster:
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        # redis-py's default waits up to a second between attempts, past every call's
        # bound: retry (re-reading the slot map) quickly, or give up within the bound.
        retry=Retry(ExponentialWithJitterBackoff(base=0.02, cap=0.1), retries=3),
        ssl=target.tls,
        **connection,
        **_credentials(target.username, target.password),
    )


def make_client(url: str, *, socket_timeout: float | None = None) -> RedisClient:
    """A client of ``url``; connecting is bounded, each call by ``redis_call``.

    ``socket_timeout`` is for tools outside the request path (the CLI), which may wait longer.
    """
    target = parse_redis_url(url)
    connection: dict[str, Any] = {
        "socket_connect_timeout": CALL_TIMEOUT,
        "socket_timeout": socket_timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        **_DRIVER,
    }
    if target.kind == "sentinel":
        return _sentinel_client(target, connection)
    if target.kind == "cluster":
        return _cluster_client(target, connection)
    return aioredis.from_url(url, **connection)


async def close_client(client: RedisClient) -> None:
    """Close ``client`` and, for a Sentinel-managed one, its connections to the sentinels."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, FollowingSentinelPool):
        await pool.stop_following()
    await client.aclose()
    if isinstance(pool, FollowingSentinelPool):
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def publish(client: RedisClient, channel: str, message: str | bytes) -> Awaitable[Any]:
    """PUBLISH ``message``. On a Cluster any node takes it and the cluster bus hands it to
    every node, so a subscriber on any node receives it (sharded pub/sub would keep it on the
    channel's shard, but redis-py's asyncio client cannot subscribe to one)."""
    if isinstance(client, RedisCluster):
        return cast(Awaitable[Any], client.execute_command("PUBLISH", channel, message))
    return cast(Awaitable[Any], client.publish(channel, message))


async def _subscriber(client: RedisClient) -> tuple[PubSub, aioredis.Redis | None]:
    """A PubSub on ``client``'s connections, and the one-node client to close after it."""
    if not isinstance(client, RedisCluster):
        return client.pubsub(), None
    cluster = await client.initialize()  # learns the nodes from the seeds, once
    # Any node delivers every PUBLISH (see ``publish``); spread replicas' listeners over
    # them, and most likely land elsewhere after the chosen node failed (the node list is
    # the client's, refreshed when a command meets a changed topology).
    node = random.choice(cluster.get_nodes())
    pool = aioredis.ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
    single = aioredis.Redis(connection_pool=pool)
    return single.pubsub(), single


class Subscription:
    """One channel's messages, and an error instead of silence when some may be lost.

    redis-py re-makes a pub/sub connection that was dropped between two reads, and
    re-subscribes, without a word (a Sentinel failover drops it so); what was published
    meanwhile is gone, and a listener must know it (``kernel.sessions.purge`` empties its
    cache then). So a re-made connection ends the subscription with a ``ConnectionError``.
    """

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        self._connection: Any = None  # redis-py types it as always None
        self._remade = False

    def _connected(self, _connection: Any) -> None:  # a method: redis-py keeps a weak one
        self._remade = True

    def watch(self) -> None:
        """Once subscribed: from now on every (re)connection of this connection counts."""
        self._connection = self._pubsub.connection
        if self._connection is not None:
            self._connection.register_connect_callback(self._connected)

    def unwatch(self) -> None:
        if self._connection is not None:  # it goes back to the pool after us
            self._connection.deregister_connect_callback(self._connected)

    async def message(self, timeout: float) -> bytes | None:
        """The next message's data, None after ``timeout`` seconds without one."""
        got = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if self._remade:
            raise RedisConnectionError("pub/sub connection re-made: messages may be lost")
        if not got or got.get("type") != "message":
            return None
        data = got.get("data")
        return data if isinstance(data, bytes) else str(data).encode()


@contextlib.asynccontextmanager
async def subscribe(client: RedisClient, channel: str) -> AsyncIterator[Subscription]:
    """A subscription to ``channel``, closed on exit."""
    pubsub, single = await _subscriber(client)
    subscription = Subscription(pubsub)
    try:
        await pubsub.subscribe(channel)
        subscription.watch()
        yield subscription
    finally:
        subscription.unwatch()
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        if single is not None:
            await single.aclose()


async def scan_keys(
    client: RedisClient, match: str, *, count: int = 1000, timeout: float = CALL_TIMEOUT
) -> list[bytes]:
    """Every key matching ``match``, page by page (each page one bounded round trip); on a
    Cluster every master is scanned, since SCAN walks one node's keys only."""
    found: list[bytes] = []
    if isinstance(client, RedisCluster):
        cluster = await redis_call(client.initialize(), timeout)
        for node in cluster.get_primaries():
            cursor = 0
            while True:
                cursors, page = await redis_call(
                    client.scan(cursor, match=match, count=count, target_nodes=node), timeout
                )
                found += page
                cursor = cursors[node.name]
                if not cursor:
                    break
        return found
    cursor = 0
    while True:
        cursor, page = await redis_call(client.scan(cursor, match=match, count=count), timeout)
        found += page
        if not cursor:
            return found


WARM_UP_TIMEOUT = 5.0


async def warm_up(client: RedisClient, timeout: float = WARM_UP_TIMEOUT) -> bool:
    """Connect before a request needs it; False when Redis did not answer (an outage like
    any other, met by each feature's fallback).

    A Cluster client's first command first learns the slot map and the commands' key
    positions (``COMMAND``): about 50 ms on an idle machine, past a call's 0.5 s bound on a
    loaded one — the first logins would fail open for nothing.
    """
    try:
        if isinstance(client, RedisCluster):
            _ = await redis_call(client.initialize(), timeout)
        else:
            await redis_call(cast(Awaitable[bool], client.ping()), timeout)
    except RedisUnavailable:
        return False
    return True


def redis_probe(client: RedisClient | None) -> Any:
    async def probe() -> dict[str, Any]:
        if client is None:
            return {"status": "embedded", "note": "in-memory store, single replica only"}
        # redis-py types ping for sync and async clients alike.
        await redis_call(cast(Awaitable[bool], client.ping()))
        return {"status": "ok"}

    return probe
