"""Three replicas behave as one: three ``python -m proxy serve`` processes sharing the local
Redis (a key prefix of their own), the suite's Postgres (an outbox table of their own) and
RabbitMQ (a queue of their own, through a fault-injecting relay), in front of one Kratos
stand-in.

- an attack spread round-robin over the replicas reaches Kratos' password check exactly as
  often as the same attack on one replica;
- a logout through replica A turns the very next decision on replica C into a 401 (the
  logout purge, over Redis pub/sub);
- welcome events recorded while the broker is held back (paused: confirms late) or cut
  (relays compete for the Postgres outbox) are delivered once each, counted by message id;
- a rules-file change reaches all three within the reload interval.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.kernel.sessions.cache import purge_channel
from tests.conftest import REDIS_BASE, Kratos
from tests.guard.client import PASSWORD, api_flow, submit
from tests.hooks.conftest import API_KEY, HEADER, Consumer
from tests.hooks.test_verification import jsonnet_payload
from tests.support.process import ServiceProcess
from tests.support.relay import FaultyRelay

pytestmark = pytest.mark.slow

RELOAD = 0.5  # DECISIONS_RELOAD_INTERVAL
RULES = """
[[rules]]
id = "switch"
paths = ["/switch/**"]
authenticators = ["anonymous"]
authorizer = "{switch}"

[[rules]]
id = "app"
paths = ["/app/**"]
authenticators = ["session_token"]
authorizer = "allow"
"""
GUARD = {
    "BACKOFF_SECRET": "shared-by-every-replica",
    "BACKOFF_PAIR_FREE": "3",
    "BACKOFF_PAIR_BASE": "60",
    "BACKOFF_IDENTIFIER_FREE": "5",
    "BACKOFF_IDENTIFIER_BASE": "60",
}
RelayFactory = Callable[[str, int], Awaitable[FaultyRelay]]


async def start_replicas(env: dict[str, str], n: int = 3) -> list[ServiceProcess]:
    replicas = [ServiceProcess(env) for _ in range(n)]
    try:
        await asyncio.gather(*(replica.start() for replica in replicas))
    except BaseException:
        await asyncio.gather(*(replica.stop() for replica in replicas))
        raise
    return replicas


@pytest.fixture
async def replicas_env(
    kratos: Kratos, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(switch="deny"))
    yield {
        "KRATOS_PUBLIC_URL": kratos.public_url,
        "KRATOS_ADMIN_URL": kratos.admin_url,
        "REDIS_URL": REDIS_BASE,
        "REDIS_KEY_PREFIX": redis_prefix,
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "DECISIONS_RULES_FILE": str(rules),
        "DECISIONS_RELOAD_INTERVAL": str(RELOAD),
        "SPOOL_DIR": str(tmp_path / "spool"),
        **GUARD,
    }


@pytest.fixture
async def trio(replicas_env: dict[str, str]) -> AsyncIterator[list[ServiceProcess]]:
    replicas = await start_replicas(replicas_env)
    yield replicas
    await asyncio.gather(*(replica.stop() for replica in replicas))


async def test_an_attack_spread_over_three_replicas_gets_what_one_replica_gives(
    trio: list[ServiceProcess], kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    a = trio[0]
    kratos.state.public_base_url = a.public_url
    ids = {name: kratos.state.add_identity(f"{name}@example.com", PASSWORD)["id"] for name in (
        "alice", "bob", "carol", "dave"
    )}  # fmt: skip

    async def attack(
        identifier: str, spread: list[ServiceProcess], net: str, *, one_ip: bool
    ) -> None:
        """30 wrong passwords at once, then 6 one after another, round-robin over ``spread``;
        from one address of ``net`` (the pair bucket holds it) or from 36 (the identifier
        bucket); each attacker with a login flow and addresses of its own."""
        flow = await api_flow(http, a.public_url)

        def one(i: int) -> Awaitable[object]:
            ip = f"{net}.1" if one_ip else f"{net}.{i + 1}"
            base = spread[i % len(spread)].public_url
            return submit(http, base, flow, identifier, forwarded_for=ip)

        await asyncio.gather(*(one(i) for i in range(30)))
        for i in range(30, 36):
            await one(i)

    await attack("alice@example.com", trio, "203.0.113", one_ip=True)
    await attack("bob@example.com", [a], "198.51.100", one_ip=True)
    await attack("carol@example.com", trio, "192.0.2", one_ip=False)
    await attack("dave@example.com", [a], "100.64.0", one_ip=False)
    checks = {name: kratos.state.password_checks[ids[name]] for name in ids}
    print(f"\npassword checks of 36 wrong attempts: {checks}")
    assert checks["alice"] == checks["bob"] == 3  # the pair's free failures
    assert checks["carol"] == checks["dave"] == 5  # the identifier's


async def test_a_logout_through_a_turns_the_next_decision_on_c_into_a_401(
    trio: list[ServiceProcess],
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_prefix: str,
) -> None:
    a, _, c = trio
    kratos.state.public_base_url = a.public_url
    async with aioredis.from_url(REDIS_BASE) as redis:
        # Each replica's purge listener subscribes in the background at start-up.
        channel = purge_channel(redis_prefix)
        deadline = time.monotonic() + 10
        while (await redis.pubsub_numsub(channel))[0][1] < 3:
            assert time.monotonic() < deadline, "not every replica listens for purges"
            await asyncio.sleep(0.05)
    identity = kratos.state.add_identity("erin@example.com", PASSWORD)
    token, _ = kratos.state.create_session(identity["id"])
    ask = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
        "X-Forwarded-Uri": "/app/x",
        "Accept": "application/json",
        "X-Session-Token": token,
    }

    async def decide(replica: ServiceProcess) -> int:
        async with http.get(replica.internal_url + "/decisions", headers=ask) as response:
            return response.status

    assert [await decide(r) for r in trio] == [200, 200, 200]  # cached by each replica now
    async with http.delete(
        a.public_url + "/self-service/logout/api", json={"session_token": token}
    ) as logout:
        assert logout.status == 204
    assert await decide(c) == 401  # the very next decision, no retry
    assert kratos.state.count("GET", "/sessions/whoami") == 1  # only the purge could deny


async def test_competing_relays_deliver_each_outbox_entry_once(
    replicas_env: dict[str, str],
    relay_to: RelayFactory,
    database_url: str,
    amqp_url: str,
    queue_prefix: str,
    http: aiohttp.ClientSession,
) -> None:
    broker = await relay_to("127.0.0.1", 5672)
    consumer = Consumer(amqp_url, f"{queue_prefix}notifications")
    env = {
        **replicas_env,
        "HOOKS_API_KEYS": API_KEY,
        "RABBITMQ_URL": broker.url("amqp", "/", userinfo="guest:guest"),
        "HOOKS_QUEUE": consumer.queue,
        "DATABASE_URL": database_url,
        "HOOKS_OUTBOX_TABLE": f"outbox_{uuid.uuid4().hex[:8]}",
        "HOOKS_PUBLISH_TIMEOUT": "0.3",
        "HOOKS_CONFIRM_TIMEOUT": "10",
        "HOOKS_OUTBOX_LEASE": "15",
        "HOOKS_RELAY_INTERVAL": "0.2",
        "HOOKS_RELAY_MAX_BACKOFF": "0.5",
        "HOOKS_AMQP_RECONNECT_INTERVAL": "0.3",
    }
    replicas = await start_replicas(env)
    try:

        async def verified(identity_ids: list[str]) -> list[str]:
            async def one(i: int, identity_id: str) -> str:
                base = replicas[i % len(replicas)].internal_url
                async with http.post(
                    base + "/hooks/kratos/verification",
                    json=jsonnet_payload(identity_id),
                    headers=HEADER,
                ) as response:
                    assert response.status == 200
                    return str((await response.json())["status"])

            return await asyncio.gather(*(one(i, x) for i, x in enumerate(identity_ids)))

        held = [str(uuid.uuid4()) for _ in range(6)]
        cut = [str(uuid.uuid4()) for _ in range(6)]
        await ready(http, replicas)
        broker.pause()  # a memory alarm: connections open, nothing moves, confirms late
        assert set(await verified(held)) == {"queued"}
        await asyncio.sleep(2.0)
        broker.resume()
        broker.cut()  # now gone: every replica's relay competes for what is recorded
        assert set(await verified(cut)) == {"queued"}
        await asyncio.sleep(1.0)
        broker.restore()
        await consumer.drain(want=len(held) + len(cut), timeout=20, settle=2.0)
    finally:
        await asyncio.gather(*(replica.stop() for replica in replicas))
        await delete_queue(amqp_url, consumer.queue)
    copies = collections.Counter(m.message_id for m in consumer.messages)
    bodies = {m.body for m in consumer.messages}
    print(f"\nwelcome events: {len(consumer.messages)} messages, {len(copies)} message ids")
    assert len(copies) == len(held) + len(cut) and set(copies.values()) == {1}
    assert all(any(x.encode() in body for body in bodies) for x in held + cut)


async def test_a_rules_change_reaches_all_three_within_the_reload_interval(
    trio: list[ServiceProcess], replicas_env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    ask = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
        "X-Forwarded-Uri": "/switch/on",
        "Accept": "application/json",
    }

    async def decide(replica: ServiceProcess) -> int:
        async with http.get(replica.internal_url + "/decisions", headers=ask) as response:
            return response.status

    assert [await decide(r) for r in trio] == [403, 403, 403]
    Path(replicas_env["DECISIONS_RULES_FILE"]).write_text(RULES.format(switch="allow"))
    changed = time.monotonic()

    async def switched(replica: ServiceProcess) -> float:
        while await decide(replica) != 200:
            await asyncio.sleep(0.02)
        return time.monotonic() - changed

    delays = await asyncio.wait_for(asyncio.gather(*(switched(r) for r in trio)), 5)
    print(f"\nrules change seen after {', '.join(f'{d:.2f}' for d in delays)} s")
    # Each polls the file every RELOAD seconds; a little slack for the machine's load.
    assert max(delays) < RELOAD + 0.5


async def ready(http: aiohttp.ClientSession, replicas: list[ServiceProcess]) -> None:
    """Until every replica's broker connection is up."""
    deadline = time.monotonic() + 10
    for replica in replicas:
        while True:
            async with http.get(replica.internal_url + "/health/ready") as response:
                report = await response.json()
            if report["checks"]["rabbitmq"]["status"] == "ok":
                break
            assert time.monotonic() < deadline, "a replica never reached the broker"
            await asyncio.sleep(0.05)


async def delete_queue(amqp_url: str, queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.queue_delete(queue)
    finally:
        await connection.close()
