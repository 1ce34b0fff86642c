"""``kratos-hooks backoff status|clear`` against the buckets the proxy writes in Redis."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from config import load_settings
from proxy.cli import main
from proxy.guard.core import Guard
from proxy.guard.identity import Keyer
from proxy.guard.policy import Outcome
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore
from proxy.kernel.redis import close_client
from tests.conftest import Kratos
from tests.guard.client import api_flow, submit
from tests.guard.conftest import Guarded, redis_client


def _env(redis_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "BACKOFF_SECRET": "cli-secret"}


async def _fail(env: dict[str, str], identifier: str, ips: list[str]) -> None:
    settings = load_settings(env=env)
    client = redis_client(env["REDIS_URL"])
    try:
        store = RedisStore(client, env["REDIS_KEY_PREFIX"])
        guard = Guard(settings, store, fallback=MemoryStore(), keyer=Keyer("cli-secret"))
        for ip in ips:
            verdict, attempt = await guard.begin(
                guard.names.subject(identifier, guard.names.address(ip))
            )
            assert verdict.allowed
            await guard.finish(attempt, Outcome.FAILURE)
    finally:
        await close_client(client)


def test_status_and_clear(
    redis_topology_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On one server, behind Sentinel, and on a Cluster (where ``clear`` scans every master)."""
    env = _env(redis_topology_url, redis_prefix)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    asyncio.run(_fail(env, "Dora@Example.com", ["192.0.2.1"] * 4))

    assert main(["backoff", "status", "dora@example.com"]) == 0
    out = capsys.readouterr().out
    assert "4 failures (free: 10)" in out
    assert "dora" not in out.lower()  # only a fingerprint, never the identifier

    assert main(["backoff", "clear", " DORA@example.com"]) == 0
    assert "cleared" in capsys.readouterr().out
    assert main(["backoff", "status", "dora@example.com"]) == 0
    assert "no recorded failures" in capsys.readouterr().out
    # The pair bucket went with it: five more from the same address are free again.
    asyncio.run(_fail(env, "dora@example.com", ["192.0.2.1"] * 5))


async def test_status_and_clear_of_an_address_the_proxy_held(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc = await guarded(TRUSTED_PROXIES="127.0.0.1/32")
    for name, value in {**_env(redis_url, redis_prefix), "BACKOFF_SECRET": "test-secret"}.items():
        monkeypatch.setenv(name, value)
    flow = await api_flow(http, svc.public_url)
    for i, ip in enumerate(["203.0.113.7"] * 2 + ["2001:db8:1:2::7", "2001:db8:1:2::8"]):
        await submit(http, svc.public_url, flow, f"user{i}@example.com", forwarded_for=ip)
    await submit(http, svc.public_url, flow, "user9@example.com", forwarded_for="2001:db8:1:3::8")
    assert kratos.state.count("POST", "/self-service/login") == 5

    async def cli(*argv: str) -> str:
        assert await asyncio.to_thread(main, ["backoff", *argv]) == 0
        return capsys.readouterr().out

    shown = await cli("status", "--ip", "203.0.113.7")
    assert "address 203.0.113.7: 2 failures (free: 50)" in shown
    # One /64 is one bucket, whichever of its addresses is asked about.
    shown = await cli("status", "--ip", "2001:db8:1:2::ffff")
    assert "address 2001:db8:1:2::/64: 2 failures (free: 50)" in shown
    assert "address 2001:db8:1:2::/64: cleared" in await cli("clear", "--ip", "2001:db8:1:2::1")
    assert "no recorded failures" in await cli("status", "--ip", "2001:db8:1:2::7")
    # The neighbouring /64 and the IPv4 address keep theirs.
    assert "1 failures" in await cli("status", "--ip", "2001:db8:1:3::8")
    assert "2 failures" in await cli("status", "--ip", "203.0.113.7")


def test_cli_wants_one_identifier_or_one_valid_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BACKOFF_SECRET", "s")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    for argv in (
        ["backoff", "status"],
        ["backoff", "clear", "x@example.com", "--ip", "192.0.2.1"],
        ["backoff", "status", "--ip", "not-an-address"],
    ):
        assert main(argv) == 2
        assert "kratos-hooks backoff:" in capsys.readouterr().err


def test_cli_refuses_without_the_servers_secret_or_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BACKOFF_SECRET", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert main(["backoff", "status", "x@example.com"]) == 2
    assert "BACKOFF_SECRET" in capsys.readouterr().err
    monkeypatch.setenv("BACKOFF_SECRET", "s")
    monkeypatch.delenv("REDIS_URL")
    assert main(["backoff", "clear", "x@example.com"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err
