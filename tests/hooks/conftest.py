"""Fixtures of the hooks tests: the platform stand-in, a per-test platform ``"user"`` table,
a RabbitMQ consumer, and the service wired to all of them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Kratos, Service, ServiceFactory
from tests.hooks.platform_standin import PlatformState, create_platform_app

API_KEY = "test-hook-key-0123456789"
HEADER = {"X-Kratos-Hooks-Key": API_KEY}


@dataclass
class Platform:
    state: PlatformState
    server: TestServer

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    state = PlatformState()
    server = TestServer(create_platform_app(state), host="127.0.0.1")
    await server.start_server()
    yield Platform(state, server)
    await server.close()


@dataclass
class UserTable:
    """The platform's ``"user"`` table (INTEGRATIONS.md) in a schema of this test's own."""

    dsn: str
    schema: str

    @property
    def query(self) -> str:
        return f'SELECT "id", "agentId" FROM "{self.schema}"."user" WHERE "authenticationID" = $1'

    @property
    def platform_dsn(self) -> str:
        """The DSN with this schema as the search path, so the shipped default queries (which
        name the platform's unqualified ``"user"`` table) run unchanged."""
        return f"{self.dsn}?search_path={self.schema}"

    async def add(self, identity_id: str | None, email: str) -> tuple[str, str]:
        """A platform user; ``identity_id`` None for one no Kratos identity is bound to yet."""
        user_id, agent_id = str(uuid.uuid4()), str(uuid.uuid4())
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                f'INSERT INTO "{self.schema}"."user" '
                '("id", "agentId", "authenticationID", "email", "firstName", "lastName", "nameID")'
                " VALUES ($1, $2, $3, $4, 'Ada', 'Lovelace', $5)",
                uuid.UUID(user_id),
                uuid.UUID(agent_id),
                None if identity_id is None else uuid.UUID(identity_id),
                email,
                email.split("@")[0],
            )
        finally:
            await conn.close()
        return user_id, agent_id

    async def bind(self, email: str, identity_id: str) -> None:
        """What the platform does once the identity exists: store its id on the user."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                f'UPDATE "{self.schema}"."user" SET "authenticationID" = $1 WHERE "email" = $2',
                uuid.UUID(identity_id),
                email,
            )
        finally:
            await conn.close()


@pytest.fixture
async def user_table(database_url: str) -> AsyncIterator[UserTable]:
    schema = f"platform_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(
            f'CREATE TABLE "{schema}"."user" ('
            ' "id" uuid PRIMARY KEY, "agentId" uuid, "authenticationID" uuid UNIQUE,'
            ' "email" varchar(512) UNIQUE NOT NULL, "firstName" varchar(128),'
            ' "lastName" varchar(128), "nameID" varchar(128), "accountID" uuid)'
        )
    finally:
        await conn.close()
    yield UserTable(database_url, schema)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


@dataclass
class Consumer:
    """A separate AMQP client reading what the service published."""

    url: str
    queue: str
    messages: list[aio_pika.abc.AbstractIncomingMessage] = field(default_factory=list)

    async def drain(
        self, *, want: int = 1, timeout: float = 10.0, settle: float = 0.5
    ) -> list[Any]:
        """Bodies of every message in the queue: waits for ``want`` then ``settle`` more."""
        connection = await aio_pika.connect(self.url)
        try:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.queue, durable=True)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            quiet_until: float | None = None
            while True:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    self.messages.append(message)
                    continue
                now = loop.time()
                if len(self.messages) >= want:
                    quiet_until = quiet_until or now + settle
                    if now >= quiet_until:
                        break
                elif now >= deadline:
                    break
                await asyncio.sleep(0.05)
        finally:
            await connection.close()
        return [orjson.loads(m.body) for m in self.messages]


@pytest.fixture
async def consumer(amqp_url: str, queue_prefix: str) -> AsyncIterator[Consumer]:
    reader = Consumer(amqp_url, f"{queue_prefix}notifications")
    yield reader
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(reader.queue)
    finally:
        await connection.close()


HooksFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def hooks_service(
    kratos: Kratos,
    start_service: ServiceFactory,
    consumer: Consumer,
    amqp_url: str,
    tmp_path: Path,
) -> HooksFactory:
    """``await hooks_service(**ENV)``: the service with the hooks enabled and fast timings."""

    async def start(wait_for_broker: bool = True, **env: str) -> Service:
        base = {
            "HOOKS_API_KEYS": f"old-key-retired-soon,{API_KEY}",
            "KRATOS_PUBLIC_URL": kratos.public_url,
            "KRATOS_ADMIN_URL": kratos.admin_url,
            "RABBITMQ_URL": amqp_url,
            "HOOKS_QUEUE": consumer.queue,
            "HOOKS_PLATFORM_URL": "https://alkem.io",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "HOOKS_PUBLISH_TIMEOUT": "0.5",
            "HOOKS_RELAY_INTERVAL": "0.2",
            "HOOKS_RELAY_MAX_BACKOFF": "0.5",
            "HOOKS_AMQP_RECONNECT_INTERVAL": "0.3",
            "HOOKS_HTTP_TIMEOUT": "0.5",
            "HOOKS_BREAKER_COOLDOWN": "0.5",
            "HOOKS_BREAKER_FAILURES": "2",
        }
        svc = await start_service(**{**base, **env})
        if wait_for_broker:
            assert await wait_until(lambda: broker_connected(svc)), "broker never connected"
        return svc

    return start


async def broker_connected(svc: Service) -> bool:
    async with aiohttp.ClientSession() as http:
        async with http.get(svc.internal_url + "/health/ready") as response:
            report = await response.json()
    return bool(report["checks"]["rabbitmq"]["status"] == "ok")


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False
