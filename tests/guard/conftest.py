"""Fixtures of the guard's tests: both stores behind one interface, and a Guard to drive."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from proxy.guard.policy import Bucket, BucketPolicy
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore, Store
from proxy.kernel.redis import RedisClient, close_client, make_client, warm_up
from proxy.kernel.redis_pipe import RedisPipe
from tests.conftest import Kratos, Service, ServiceFactory
from tests.guard.client import start
from tests.support.topology_fixtures import topology_url


def redis_client(url: str) -> RedisClient:
    """The service's own client of ``url`` (one server, Sentinel or Cluster)."""
    return make_client(url)


@pytest.fixture(params=["memory", "redis", "redis-pipe", "sentinel", "cluster"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Store]:
    """Each store behind one interface: in memory, and in Redis on each topology."""
    if request.param == "memory":
        yield MemoryStore()
        return
    kind = "server" if request.param in ("redis", "redis-pipe") else request.param
    client = redis_client(topology_url(request, kind, redis_url))
    pipe = RedisPipe(redis_url) if request.param == "redis-pipe" else None
    try:
        assert await warm_up(client)  # as the service does at start-up
        yield RedisStore(client, redis_prefix, pipe=pipe)
    finally:
        if pipe is not None:
            await pipe.close()
        await close_client(client)


def bucket(kind: str, key: str, free: int = 3, base: float = 2.0, cap: float = 30.0) -> Bucket:
    return Bucket(kind, key, BucketPolicy(free, base, cap, 600.0), reset_on_success=kind != "ip")


Guarded = Callable[..., Awaitable[Service]]


@pytest.fixture
def guarded(
    start_service: ServiceFactory, kratos: Kratos, redis_url: str, redis_prefix: str
) -> Guarded:
    """Start the service in front of the stand-in, the guard on this test's Redis prefix;
    keyword arguments are settings (``BACKOFF_PAIR_FREE="1"``)."""

    async def make(**env: str) -> Service:
        return await start(start_service, kratos, redis_url, redis_prefix, **env)

    return make
