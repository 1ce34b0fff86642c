"""Two limits of the token check, both fixed windows.

- **Failures per client IP**: a well-formed token the store does not know counts against the
  address it came from; past ``TOKENS_FAILURE_LIMIT`` in a window, that address's unknown
  tokens are answered 429 without a store look-up until the window ends (a token already in
  the cache is still answered: a flood never locks out a caller whose token works). Counted in
  Redis when configured (every replica counts the same address together), else here; the
  gate itself is this process's memory, so checking it costs nothing.
- **A token's own rate limit** (requests per minute, set when it was made): counted in Redis
  (shared), else in this process.

Memory is bounded: the windows' tables are emptied when they grow past a bound (a window
that ended is never read again anyway).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from handlers.credentials.credential_metrics import REDIS_ERRORS
from proxy.kernel.digests import sha256_hex
from proxy.kernel.redis import RedisClient, RedisUnavailable, redis_call

log = logging.getLogger("kratos_hooks.credentials")
MAX_KEYS = 100_000


def window(now: float, length: float) -> tuple[int, int]:
    """(window index, whole seconds until it ends — at least 1) (pure)."""
    index = int(now // length)
    return index, max(1, math.ceil((index + 1) * length - now))


class Counter:
    """Fixed-window counts in Redis, or here when Redis is missing or failing."""

    def __init__(
        self,
        redis: RedisClient | None,
        namespace: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._clock = clock
        self._local: dict[str, int] = {}

    def _count_local(self, key: str) -> int:
        if len(self._local) >= MAX_KEYS:
            self._local.clear()
        self._local[key] = self._local.get(key, 0) + 1
        return self._local[key]

    async def hit(self, who: str, length: float) -> tuple[int, int]:
        """Count one event for ``who``: (count in this window, seconds left in it)."""
        index, left = window(self._clock(), length)
        key = f"{self._namespace}{who}:{index}"
        if self._redis is None:
            return self._count_local(key), left
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.pexpire(key, int(length * 1000) + 1000)
                count = int((await redis_call(pipe.execute()))[0])
        except RedisUnavailable as exc:
            REDIS_ERRORS.inc()
            log.warning("token limit counted locally", extra={"error": str(exc)})
            count = self._count_local(key)
        return count, left


class FailureGate:
    """Unknown tokens per client IP."""

    def __init__(
        self,
        redis: RedisClient | None,
        prefix: str,
        *,
        limit: int,
        length: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.length = length
        self._clock = clock
        self._counter = Counter(redis, f"{prefix}tokens:fail:", clock)
        self._closed: dict[str, float] = {}  # address tag → until

    @staticmethod
    def tag(ip: str) -> str:
        return sha256_hex(ip.encode())[:24]  # keys never carry the address itself

    def closed_for(self, ip: str) -> int:
        """Seconds ``ip`` must wait before an unknown token is looked up again; 0: open."""
        if not self.limit or not self._closed:
            return 0
        tag = self.tag(ip)
        until = self._closed.get(tag)
        if until is None:
            return 0
        left = until - self._clock()
        if left <= 0:
            del self._closed[tag]
            return 0
        return max(1, math.ceil(left))

    async def failed(self, ip: str) -> None:
        if not self.limit:
            return
        tag = self.tag(ip)
        count, left = await self._counter.hit(tag, self.length)
        if count >= self.limit:
            if len(self._closed) >= MAX_KEYS:
                self._closed.clear()
            self._closed[tag] = self._clock() + left


class TokenRates:
    """Each token's own requests-per-minute limit."""

    def __init__(
        self, redis: RedisClient | None, prefix: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._counter = Counter(redis, f"{prefix}tokens:rate:", clock)

    async def hit(self, token_id: str, per_minute: int) -> int:
        """Count one request; the seconds to wait when over the limit, else 0."""
        count, left = await self._counter.hit(token_id, 60.0)
        return left if count > per_minute else 0
