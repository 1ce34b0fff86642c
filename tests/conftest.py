"""Shared fixtures: the Kratos stand-in, the real service on loopback, and per-run isolation
for the real Redis, PostgreSQL and RabbitMQ (a key prefix, a database and a queue prefix that
no other run uses)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from blockbuster import BlockBuster, blockbuster_ctx

from config import Settings, load_settings
from proxy import server
from proxy.native import native_state
from tests.kratos_standin import StandinState, create_admin_app, create_public_app
from tests.support.relay import FaultyRelay
from tests.support.topology_fixtures import (  # noqa: F401 (fixtures)
    failover_sentinel,
    redis_cluster,
    redis_sentinel,
    redis_topology_url,
)

REDIS_BASE = os.environ.get("KH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_ADMIN = os.environ.get(
    "KH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("KH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

RUN_ID = uuid.uuid4().hex[:10]


def pytest_sessionstart(session: pytest.Session) -> None:
    """A compiled module older than its source would test the old code (``proxy.native``)."""
    stale = native_state().stale
    if stale:
        pytest.exit(
            f"compiled modules older than their source: {', '.join(stale)}; run `make test`"
            " (it rebuilds them) or delete their .so files",
            returncode=2,
        )


# --- catching blocking calls in the event loop (as aiohttp's own suite does) ---------------


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    if request.node.get_closest_marker("allow_blocking"):
        yield None
        return
    with blockbuster_ctx(["proxy", "handlers", "config"]) as bb:
        yield bb


# --- the Kratos stand-in ---------------------------------------------------------------------


@dataclass
class Kratos:
    state: StandinState
    public: TestServer
    admin: TestServer

    @property
    def public_url(self) -> str:
        return str(self.public.make_url("")).rstrip("/")

    @property
    def admin_url(self) -> str:
        return str(self.admin.make_url("")).rstrip("/")


async def _serve(app: web.Application) -> TestServer:
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    return test_server


@pytest.fixture
async def kratos() -> AsyncIterator[Kratos]:
    state = StandinState()
    public = await _serve(create_public_app(state))
    admin = await _serve(create_admin_app(state))
    try:
        yield Kratos(state, public, admin)
    finally:
        await public.close()
        await admin.close()


# --- the service under test, on real loopback listeners ---------------------------------------


@dataclass
class Service:
    settings: Settings
    running: server.Running

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.running.public_port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.running.internal_port}"


ServiceFactory = Callable[..., Awaitable[Service]]


def test_settings(**env: str) -> Settings:
    base = {
        "PUBLIC_LISTEN": "127.0.0.1:0",
        "INTERNAL_LISTEN": "127.0.0.1:0",
        "LOG_FORMAT": "console",
        "SHUTDOWN_TIMEOUT": "5",
        "SPOOL_DIR": f"/tmp/kh-test-{RUN_ID}/spool",
    }
    return load_settings(env={**base, **env})


@pytest.fixture
async def start_service() -> AsyncIterator[ServiceFactory]:
    """``await start_service(KRATOS_PUBLIC_URL=..., ...)``: the real listeners, stopped after."""
    started: list[server.Running] = []

    async def start(**env: str) -> Service:
        settings = test_settings(**env)
        running = await server.start(settings)
        started.append(running)
        return Service(settings, running)

    yield start
    for running in reversed(started):
        await running.stop()


@pytest.fixture
async def service(kratos: Kratos, start_service: ServiceFactory) -> Service:
    """The service in front of the stand-in, with the stand-in's base URL set to the proxy."""
    svc = await start_service(
        KRATOS_PUBLIC_URL=kratos.public_url, KRATOS_ADMIN_URL=kratos.admin_url
    )
    kratos.state.public_base_url = svc.public_url
    return svc


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that changes nothing: no cookie jar, no decompression, no redirects followed."""
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:
        yield session


# --- real services, isolated per run ----------------------------------------------------------


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """The shared Redis, with this test's own key prefix (``REDIS_KEY_PREFIX``) cleaned after."""
    yield REDIS_BASE


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"kh-test-{RUN_ID}-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = aioredis.from_url(REDIS_BASE)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A database of this run's own, dropped at the end."""
    name = f"kh_test_{RUN_ID}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = POSTGRES_ADMIN.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def queue_prefix() -> str:
    """Queues a test declares start with this, so parallel runs never share one."""
    return f"kh-test-{RUN_ID}-{uuid.uuid4().hex[:6]}."


@pytest.fixture
async def relay_to() -> AsyncIterator[Callable[[str, int], Awaitable[FaultyRelay]]]:
    """``await relay_to(host, port)``: a FaultyRelay in front of a real service."""
    relays: list[FaultyRelay] = []

    async def make(host: str, port: int) -> FaultyRelay:
        relay = await FaultyRelay(host, port).start()
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        await relay.close()
