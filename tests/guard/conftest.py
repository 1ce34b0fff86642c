"""Fixtures of the guard's tests: both stores behind one interface, and a Guard to drive."""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.driver_info import DriverInfo

from proxy.guard.policy import Bucket, BucketPolicy
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore, Store
from tests.conftest import Kratos, Service, ServiceFactory
from tests.guard.client import start

# redis-py stats site-packages for its version on every new connection unless told it.
DRIVER = DriverInfo(lib_version=importlib.metadata.version("redis"))


def redis_client(url: str) -> aioredis.Redis:
    return aioredis.from_url(url, driver_info=DRIVER)


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = redis_client(redis_url)
    try:
        yield RedisStore(client, redis_prefix)
    finally:
        await client.aclose()


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
