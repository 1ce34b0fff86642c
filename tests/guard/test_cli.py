"""``kratos-hooks backoff status|clear`` against the buckets the proxy writes in Redis."""

from __future__ import annotations

import asyncio

import pytest

from config import load_settings
from proxy.cli import main
from proxy.guard.core import Guard
from proxy.guard.identity import Keyer
from proxy.guard.policy import Outcome
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore
from tests.guard.conftest import redis_client


def _env(redis_url: str, prefix: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "REDIS_KEY_PREFIX": prefix, "BACKOFF_SECRET": "cli-secret"}


async def _fail(env: dict[str, str], identifier: str, ips: list[str]) -> None:
    settings = load_settings(env=env)
    client = redis_client(env["REDIS_URL"])
    try:
        store = RedisStore(client, env["REDIS_KEY_PREFIX"])
        guard = Guard(settings, store, fallback=MemoryStore(), keyer=Keyer("cli-secret"))
        for ip in ips:
            verdict, attempt = await guard.begin(guard.subject(identifier, ip))
            assert verdict.allowed
            await guard.finish(attempt, Outcome.FAILURE)
    finally:
        await client.aclose()


def test_status_and_clear(
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = _env(redis_url, redis_prefix)
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
