"""Revocations reach a second replica within a second — over Redis pub/sub, over Postgres
LISTEN/NOTIFY without Redis, and through the embedded file — and what caches the token check
keeps (Redis entries shared, a bounded negative cache, the per-IP failure gate)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from handlers.credentials.tokens import issue
from tests.credentials.conftest import Tokens, TokensFactory, bearer, forwarded
from tests.support.metrics import metric_total

QUERIES = "kratos_hooks_tokens_store_queries_total"


async def status(http: aiohttp.ClientSession, t: Tokens, token: str, ip: str = "") -> int:
    headers = forwarded("/api/users/1") | bearer(token)
    if ip:
        headers["X-Forwarded-For"] = ip
    async with http.get(t.url, headers=headers) as response:
        await response.read()
        return response.status


async def propagation(http: aiohttp.ClientSession, first: Tokens, second: Tokens) -> float:
    """Seconds from a revocation on ``first`` until ``second`` refuses the token."""
    secret, token_id = await first.mint()
    assert await status(http, first, secret) == 200
    assert await status(http, second, secret) == 200  # cached on the second replica now
    started = time.perf_counter()
    await first.credentials.revoke(token_id, by="test")
    while await status(http, second, secret) != 401:
        assert time.perf_counter() - started < 3.0, "the revocation never arrived"
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def test_over_redis_pubsub(
    start_tokens: TokensFactory,
    http: aiohttp.ClientSession,
    redis_url: str,
    redis_prefix: str,
    database_url: str,
    pg_schema: str,
) -> None:
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "DATABASE_URL": database_url,
        "TOKENS_DATABASE_SCHEMA": pg_schema,
        "DB_MIGRATE": "true",
        "TOKENS_CACHE_TTL": "300",
    }
    first, second = await start_tokens(**env), await start_tokens(**env)
    assert first.credentials.revocations.mode == "redis"
    assert await propagation(http, first, second) < 1.0


async def test_over_postgres_notify_without_redis(
    start_tokens: TokensFactory, http: aiohttp.ClientSession, database_url: str, pg_schema: str
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "TOKENS_DATABASE_SCHEMA": pg_schema,
        "DB_MIGRATE": "true",
        "TOKENS_CACHE_TTL": "300",
    }
    first, second = await start_tokens(**env), await start_tokens(**env)
    assert second.credentials.revocations.mode == "notify"
    await asyncio.sleep(0.7)  # nothing cached yet: the listeners have not connected
    assert await propagation(http, first, second) < 1.0


async def test_through_the_embedded_file(
    start_tokens: TokensFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    env = {"TOKENS_SQLITE_FILE": str(tmp_path / "shared.sqlite3"), "TOKENS_CACHE_TTL": "300"}
    first, second = await start_tokens(**env), await start_tokens(**env)
    assert second.credentials.revocations.mode == "poll"
    assert await propagation(http, first, second) < 1.0


async def test_a_second_replica_reads_the_shared_entry_not_the_store(
    start_tokens: TokensFactory,
    http: aiohttp.ClientSession,
    redis_url: str,
    redis_prefix: str,
    database_url: str,
    pg_schema: str,
) -> None:
    env = {
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "DATABASE_URL": database_url,
        "TOKENS_DATABASE_SCHEMA": pg_schema,
        "DB_MIGRATE": "true",
    }
    first, second = await start_tokens(**env), await start_tokens(**env)
    secret, _ = await first.mint()
    assert await status(http, first, secret) == 200
    before = await metric_total(http, first.service.internal_url, QUERIES, op="by_hash")
    admin_before = first.kratos.state.count("GET", "/admin/identities")
    assert await status(http, second, secret) == 200
    assert await metric_total(http, first.service.internal_url, QUERIES, op="by_hash") == before
    assert first.kratos.state.count("GET", "/admin/identities") == admin_before


async def test_a_flood_of_random_tokens_is_answered_without_hammering_the_store(
    start_tokens: TokensFactory, http: aiohttp.ClientSession
) -> None:
    t = await start_tokens(TOKENS_FAILURE_LIMIT="10", TOKENS_NEGATIVE_CACHE_SIZE="50")
    good, _ = await t.mint()
    assert await status(http, t, good, "203.0.113.9") == 200
    prefixes = t.credentials.config.prefixes
    randoms = [issue("pat", prefixes).secret for _ in range(200)]
    before = await metric_total(http, t.service.internal_url, QUERIES, op="by_hash")
    answers = [await status(http, t, token, "203.0.113.9") for token in randoms]
    looked_up = await metric_total(http, t.service.internal_url, QUERIES, op="by_hash") - before
    assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
    assert looked_up == 10
    # The same unknown token again is answered from the negative cache, from anywhere.
    assert await status(http, t, randoms[5], "198.51.100.1") == 401
    assert await metric_total(http, t.service.internal_url, QUERIES, op="by_hash") - before == 10
    assert len(t.credentials.cache.negative) <= 50  # bounded
    # A working token from the flooding address is still answered (it is cached).
    assert await status(http, t, good, "203.0.113.9") == 200
    # Other addresses are not held.
    assert await status(http, t, issue("pat", prefixes).secret, "198.51.100.2") == 401


async def test_a_token_rate_limit_is_429_with_retry_after(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    secret, _ = await tokens.mint(rate_limit=3)
    answers = []
    for _ in range(5):
        async with http.get(
            tokens.url, headers=forwarded("/api/users/1") | bearer(secret)
        ) as response:
            answers.append((response.status, response.headers.get("Retry-After")))
    assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
    assert 1 <= int(answers[3][1] or 0) <= 60


async def test_the_store_down_fails_closed(
    start_tokens: TokensFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    pg_schema: str,
    relay_to,  # type: ignore[no-untyped-def]
) -> None:
    relay = await relay_to("127.0.0.1", 5432)
    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    t = await start_tokens(
        DATABASE_URL=proxied, TOKENS_DATABASE_SCHEMA=pg_schema, DB_MIGRATE="true"
    )
    cached, _ = await t.mint()
    fresh, _ = await t.mint()
    assert await status(http, t, cached) == 200
    relay.cut()
    async with http.get(t.url, headers=forwarded("/api/users/1") | bearer(fresh)) as response:
        assert response.status == 503
        assert (await response.json())["error"]["id"] == "dependency_unavailable"
    assert await status(http, t, cached) == 200  # what is cached still answers


async def test_a_stalled_store_fails_closed_within_its_timeout(
    start_tokens: TokensFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    pg_schema: str,
    relay_to,  # type: ignore[no-untyped-def]
) -> None:
    """A database that holds every byte (its connections open, nothing moves) costs a token
    check TOKENS_STORE_TIMEOUT, then 503 — also once every pooled connection is stuck in a
    timed-out query, and for checks that arrive together."""
    relay = await relay_to("127.0.0.1", 5432)
    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    t = await start_tokens(
        DATABASE_URL=proxied,
        TOKENS_DATABASE_SCHEMA=pg_schema,
        DB_MIGRATE="true",
        TOKENS_STORE_TIMEOUT="0.5",
    )
    fresh = [(await t.mint())[0] for _ in range(24)]

    async def timed(token: str) -> tuple[int, float]:
        started = time.perf_counter()
        answer = await status(http, t, token)
        return answer, time.perf_counter() - started

    relay.pause()
    try:
        one_by_one = [await timed(token) for token in fresh[:12]]  # more than the pool holds
        together = await asyncio.gather(*(timed(token) for token in fresh[12:]))
    finally:
        relay.resume()
    for answer, seconds in [*one_by_one, *together]:
        assert answer == 503
        assert seconds < 1.6, f"{seconds:.2f} s"


async def test_last_used_is_written_once_per_interval_and_at_shutdown(
    start_tokens: TokensFactory, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.sqlite3"
    t = await start_tokens(TOKENS_SQLITE_FILE=str(path))
    secret, token_id = await t.mint()
    credentials = t.credentials
    before = await metric_total(http, t.service.internal_url, QUERIES, op="touch")
    lookups = await metric_total(http, t.service.internal_url, QUERIES, op="by_hash")
    for _ in range(1000):
        assert await status(http, t, secret, "203.0.113.50") == 200
    assert await credentials.last_used.flush() == 1  # one write for 1,000 decisions
    assert await credentials.last_used.flush() == 0  # nothing due again within the minute
    touched = await metric_total(http, t.service.internal_url, QUERIES, op="touch") - before
    looked_up = await metric_total(http, t.service.internal_url, QUERIES, op="by_hash") - lookups
    assert (touched, looked_up) == (1, 1)
    record = await credentials.store.by_id(token_id)
    assert record is not None and record.last_used_ip == "203.0.113.50"
    first_use = record.last_used_at
    await asyncio.sleep(1.1)
    assert await status(http, t, secret, "198.51.100.60") == 200
    assert await credentials.last_used.flush() == 0  # due again only after the interval
    await t.service.running.stop()  # … but written at shutdown
    from handlers.credentials.store_sqlite import SqliteStore

    reopened = SqliteStore(str(path))
    record = await reopened.by_id(token_id)
    await reopened.close()
    assert record is not None and record.last_used_ip == "198.51.100.60"
    assert record.last_used_at is not None and first_use is not None
    assert record.last_used_at > first_use


@pytest.mark.parametrize("via", ["X-API-Key", "Authorization"])
async def test_store_queries_per_1000_decisions_of_one_token(
    tokens: Tokens, http: aiohttp.ClientSession, via: str
) -> None:
    """One look-up and one batched write (the embedded store's revocation poll, twice a
    second per replica whatever the traffic, is not per decision and not counted here)."""
    secret, _ = await tokens.mint()
    headers = {"X-API-Key": secret} if via == "X-API-Key" else bearer(secret)
    url = tokens.service.internal_url

    async def per_decision() -> float:
        return sum([await metric_total(http, url, QUERIES, op=op) for op in ("by_hash", "touch")])

    before = await per_decision()
    for _ in range(1000):
        async with http.get(tokens.url, headers=forwarded("/api/users/1") | headers) as r:
            assert r.status == 200
    await tokens.credentials.last_used.flush()
    assert await per_decision() - before == 2
