"""A revocation reaches every replica within a second.

The replica (or the CLI) that revokes marks the token "revoked" in its own cache, overwrites
the shared Redis entry with the same marker (for the cache TTL, so a look-up in flight cannot
bring the token back) and tells the others — by the first of these that is configured:

    Redis        PUBLISH <prefix>tokens:revoked <hash>     every replica SUBSCRIBEs
    Postgres     NOTIFY kh_tokens_revoked, <hash>          sent in the revoking transaction;
                                                           replicas LISTEN when there is no Redis
    SQLite file  revoked_at in the file itself             each process polls it (0.5 s)

A listener that lost its connection may have missed revocations: when it is back it empties
this process's token cache, so the next checks ask Redis or the store again. A Postgres or
SQLite listener connects only once this process has cached a token (until then there is
nothing to make stale), so services that never see a token never touch the store.
Messages carry the hash, never the token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from handlers.credentials.credential_metrics import PROPAGATIONS, REDIS_ERRORS
from handlers.credentials.store import REVOKED_CHANNEL, StoreUnavailable, TokenStore
from handlers.credentials.token_cache import TokenCache, encode, revoked_channel, token_key
from proxy.kernel.pg import connect
from proxy.kernel.redis import (
    RedisClient,
    RedisUnavailable,
    publish,
    redis_call,
    redis_errors,
    subscribe,
)

log = logging.getLogger("kratos_hooks.credentials")
_HASH = re.compile(r"[0-9a-f]{64}")
RECONNECT_MAX = 30.0
IDLE_CHECK = 0.5


class Revocations:
    def __init__(
        self,
        cache: TokenCache,
        store: TokenStore,
        *,
        redis: RedisClient | None,
        prefix: str,
        poll: float,
        dsn: str = "",
        schema: str = "",
        timeout: float = 2.0,
    ) -> None:
        self.cache = cache
        self.store = store
        self.redis = redis
        self.prefix = prefix
        self.poll = poll
        self.dsn = dsn
        self.schema = schema
        self.timeout = timeout

    @property
    def mode(self) -> str:
        if self.redis is not None:
            return "redis"
        return "notify" if self.store.backend == "postgres" else "poll"

    def apply(self, token_hash: str, origin: str) -> None:
        if _HASH.fullmatch(token_hash):
            self.cache.mark_revoked(token_hash)
            PROPAGATIONS.labels(origin).inc()

    async def announce(self, hashes: Sequence[str]) -> None:
        """Tell this process, Redis and every other replica (the store already has it)."""
        for token_hash in hashes:
            self.apply(token_hash, "local")
        if self.redis is None or not hashes:
            return
        marker = encode(self.cache.revoked_entry())
        ttl_ms = max(1, int(self.cache.ttl * 1000))
        try:
            # One key at a time, then the publish: on a Cluster the markers live on several
            # shards and PUBLISH is not pipelined with them (``kernel.redis.publish``).
            for token_hash in hashes:
                await redis_call(
                    self.redis.set(token_key(self.prefix, token_hash), marker, px=ttl_ms)
                )
                await redis_call(publish(self.redis, revoked_channel(self.prefix), token_hash))
        except RedisUnavailable as exc:
            REDIS_ERRORS.inc()
            log.warning(
                "revocation not shared with other replicas (their caches hold it for at most "
                "TOKENS_CACHE_TTL)",
                extra={"error": str(exc)},
            )

    async def run(self) -> None:
        """Apply every other replica's revocations to this process's cache, forever."""
        if self.mode == "redis":
            assert self.redis is not None
            await _forever("redis", self._listen_redis)
        elif self.mode == "notify":
            await _forever("postgres", self._listen_postgres)
        else:
            await self._poll()

    async def _wait_for_tokens(self) -> None:
        while not len(self.cache):
            await asyncio.sleep(IDLE_CHECK)

    async def _listen_redis(self) -> None:
        assert self.redis is not None
        with redis_errors():
            async with subscribe(self.redis, revoked_channel(self.prefix)) as subscription:
                self.cache.flush()  # whatever was published while we were away is caught up
                while True:
                    data = await subscription.message(timeout=1.0)
                    if data is not None:
                        self.apply(data.decode(errors="replace"), "pubsub")

    async def _listen_postgres(self) -> None:
        await self._wait_for_tokens()
        conn = await connect(self.dsn, timeout=self.timeout, schema=self.schema)
        lost = asyncio.Event()

        def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            self.apply(payload, "notify")

        try:
            await conn.add_listener(REVOKED_CHANNEL, heard)
            conn.add_termination_listener(lambda _conn: lost.set())
            self.cache.flush()
            while not lost.is_set():
                await asyncio.sleep(1.0)
                if conn.is_closed():
                    break
        finally:
            if not conn.is_closed():
                await conn.close(timeout=self.timeout)
        raise ConnectionError("LISTEN connection lost")

    async def _poll(self) -> None:
        watermark = time.time() - 1.0
        while True:
            await asyncio.sleep(self.poll)
            if not len(self.cache):
                watermark = time.time() - 1.0  # nothing cached can be stale
                continue
            try:
                rows = await self.store.revoked_since(watermark)
            except StoreUnavailable as exc:
                log.warning("revocation poll failed", extra={"error": str(exc)})
                continue
            for token_hash, revoked_at in rows:
                self.apply(token_hash, "poll")
                watermark = max(watermark, revoked_at)


LISTEN_FAILURES = (
    RedisUnavailable,
    OSError,
    TimeoutError,
    ConnectionError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


async def _forever(what: str, listen: Callable[[], Awaitable[None]]) -> None:
    delay = 0.0
    while True:
        try:
            await listen()
        except LISTEN_FAILURES as exc:
            if what == "redis":
                REDIS_ERRORS.inc()
            delay = min(RECONNECT_MAX, max(0.5, delay * 2))
            log.warning(
                "revocation listener lost its connection",
                extra={"via": what, "error": type(exc).__name__, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
