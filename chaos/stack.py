"""The system under test: ``python -m proxy serve`` with every dependency behind a
``FaultyRelay`` — Redis, RabbitMQ, PostgreSQL (the outbox, the credential store and the
platform database) and both
Kratos APIs (the suite's stand-in, served from this process) — each run isolated by its own
Redis key prefix, database and queue, all removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from yarl import URL

from tests.kratos_standin import StandinState, create_admin_app, create_public_app
from tests.support.process import ServiceProcess
from tests.support.relay import FaultyRelay

REDIS = os.environ.get("KH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get("KH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP = os.environ.get("KH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
HOOK_KEY = "chaos-hook-key-0123456789"
ADMIN_KEY = "chaos-admin-key-0123456789"
TOKEN_CACHE_TTL = 0.5  # TOKENS_CACHE_TTL: short, so the load's API keys are asked of the store
TOKEN_POOL = 40  # API keys the load rotates through (each reused long after its cache entry)
PASSWORD = "correct horse battery staple"

RULES = """
[[rules]]
id = "app"
paths = ["/app", "/app/**"]
authenticators = ["session_token"]
authorizer = "allow"

[[rules]]
id = "api"
paths = ["/api/**"]
authenticators = ["token"]
authorizer = "allow"
"""


@dataclass(frozen=True)
class Timings:
    """The service's bounds, short enough for an outage to show within a run."""

    read_timeout: float = 2.0  # UPSTREAM_READ_TIMEOUT: a stalled Kratos → 504 after it
    whoami_timeout: float = 1.0  # DECISIONS_WHOAMI_TIMEOUT: → 503 after it
    confirm_timeout: float = 20.0  # HOOKS_CONFIRM_TIMEOUT: longer than any stall here


def _host_port(url: str) -> tuple[str, int]:
    parsed = URL(url)
    return parsed.host or "127.0.0.1", int(parsed.port or 0)


@dataclass
class Stack:
    kratos: StandinState
    relays: dict[str, FaultyRelay]
    service: ServiceProcess
    queue: str
    workdir: Path
    users: list[dict[str, Any]] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)

    def faults(self, dependency: str) -> list[FaultyRelay]:
        """The relays an outage of ``dependency`` cuts: Kratos is both of its APIs; Postgres is
        the outbox, the credential store and the platform database (one server)."""
        if dependency == "kratos":
            return [self.relays["kratos_public"], self.relays["kratos_admin"]]
        return [self.relays[dependency]]

    @property
    def log_file(self) -> Path:
        return self.workdir / "service.log"


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def _platform_table(dsn: str) -> None:
    """The platform's ``"user"`` table (INTEGRATIONS.md), which the identity resolver reads."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            'CREATE TABLE "user" ("id" uuid PRIMARY KEY, "agentId" uuid,'
            ' "authenticationID" uuid UNIQUE, "email" varchar(512) UNIQUE NOT NULL)'
        )
    finally:
        await conn.close()


async def _add_platform_user(dsn: str, identity_id: str, email: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            'INSERT INTO "user" ("id", "agentId", "authenticationID", "email")'
            " VALUES ($1, $2, $3, $4)",
            uuid.uuid4(),
            uuid.uuid4(),
            uuid.UUID(identity_id),
            email,
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def stack(timings: Timings, users: int = 20) -> AsyncIterator[Stack]:
    run = uuid.uuid4().hex[:10]
    database = f"kh_chaos_{run}"
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    base, _, _ = POSTGRES.rpartition("/")
    dsn = f"{base}/{database}"
    await _platform_table(dsn)
    state = StandinState()
    public_runner, public_port = await _serve(create_public_app(state))
    admin_runner, admin_port = await _serve(create_admin_app(state))
    relays = {
        "kratos_public": await FaultyRelay("127.0.0.1", public_port).start(),
        "kratos_admin": await FaultyRelay("127.0.0.1", admin_port).start(),
        "redis": await FaultyRelay(*_host_port(REDIS)).start(),
        "postgres": await FaultyRelay(*_host_port(POSTGRES)).start(),
        "rabbitmq": await FaultyRelay(*_host_port(AMQP)).start(),
    }
    workdir = Path(tempfile.mkdtemp(prefix="kh-chaos-"))
    (workdir / "rules.toml").write_text(RULES, encoding="utf-8")
    queue = f"kh-chaos-{run}.notifications"
    prefix = f"kh-chaos-{run}:"
    pg_user = URL(POSTGRES).user or "postgres"
    amqp = URL(AMQP)
    env = {
        "KRATOS_PUBLIC_URL": relays["kratos_public"].url("http"),
        "KRATOS_ADMIN_URL": relays["kratos_admin"].url("http"),
        "REDIS_URL": relays["redis"].url("redis", "/0"),
        "REDIS_KEY_PREFIX": prefix,
        "DATABASE_URL": relays["postgres"].url("postgresql", f"/{database}", pg_user),
        "HOOKS_PLATFORM_DATABASE_URL": relays["postgres"].url(
            "postgresql", f"/{database}", pg_user
        ),
        "HOOKS_RESOLVERS": "postgres",
        "RABBITMQ_URL": relays["rabbitmq"].url(
            "amqp", amqp.path or "/", f"{amqp.user or 'guest'}:{amqp.password or 'guest'}"
        ),
        "HOOKS_QUEUE": queue,
        "HOOKS_API_KEYS": HOOK_KEY,
        "HOOKS_PUBLISH_TIMEOUT": "0.5",
        "HOOKS_CONFIRM_TIMEOUT": str(timings.confirm_timeout),
        "HOOKS_OUTBOX_LEASE": str(timings.confirm_timeout + 5),
        "HOOKS_AMQP_RECONNECT_INTERVAL": "0.3",
        "HOOKS_RELAY_INTERVAL": "0.3",
        "HOOKS_RELAY_MAX_BACKOFF": "1",
        "HOOKS_DB_TIMEOUT": "0.5",
        "HOOKS_HTTP_TIMEOUT": "0.5",
        "HOOKS_BREAKER_COOLDOWN": "1",
        "UPSTREAM_CONNECT_TIMEOUT": "1",
        "UPSTREAM_READ_TIMEOUT": str(timings.read_timeout),
        "DECISIONS_WHOAMI_TIMEOUT": str(timings.whoami_timeout),
        "DECISIONS_RULES_FILE": str(workdir / "rules.toml"),
        "BACKOFF_SECRET": f"chaos-{run}",
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "RATE_LIMIT_LOGIN": "0",
        "SPOOL_DIR": str(workdir / "spool"),
        "SHUTDOWN_TIMEOUT": "5",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        "ACCESS_LOG": "false",
        "DB_MIGRATE": "true",
        "TOKENS_ADMIN_KEYS": ADMIN_KEY,
        "TOKENS_CACHE_TTL": str(TOKEN_CACHE_TTL),
        "TOKENS_STORE_TIMEOUT": "0.5",
    }
    service = ServiceProcess(env, log_file=workdir / "service.log")
    built = Stack(state, relays, service, queue, workdir)
    try:
        await service.start()
        state.public_base_url = service.public_url
        for i in range(users):
            email = f"user{i}@chaos.example"
            identity = state.add_identity(email, PASSWORD)
            await _add_platform_user(dsn, identity["id"], email)
            built.users.append(identity)
        built.api_keys = await _issue_api_keys(service.internal_url, TOKEN_POOL)
        yield built
    finally:
        await service.stop()
        for relay in relays.values():
            await relay.close()
        await public_runner.cleanup()
        await admin_runner.cleanup()
        await _drop(database, queue, prefix)
        shutil.rmtree(workdir, ignore_errors=True)


async def _issue_api_keys(internal_url: str, count: int) -> list[str]:
    """API keys from the admin API, as an operator makes them."""
    keys = []
    headers = {"X-Kratos-Hooks-Admin-Key": ADMIN_KEY}
    async with aiohttp.ClientSession() as http:
        for i in range(count):
            body = {"organization": "org-chaos", "name": f"load {i}", "scopes": ["read:users"]}
            async with http.post(
                f"{internal_url}/admin/tokens/keys", json=body, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
                keys.append(str((await response.json())["token"]))
    return keys


async def _drop(database: str, queue: str, prefix: str) -> None:
    admin = await asyncpg.connect(POSTGRES)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()
    client = aioredis.from_url(REDIS)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def consume(queue: str, settle: float = 1.0) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message on ``queue`` (read without the service), once it stays empty ``settle`` s."""
    found: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        quiet = 0.0
        while quiet < settle:
            message = await declared.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                quiet += 0.1
                continue
            found.append(message)
            quiet = 0.0
    finally:
        await connection.close()
    return found
