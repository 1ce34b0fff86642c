"""Per-rule rate limits, per client IP and per subject: fixed windows counted in Redis.

A fixed window (one ``INCR`` + ``PEXPIRE`` round trip) is enough here: these limits shield
upstream apps from floods, they are not a security boundary, and a burst of twice the limit
at a window edge is acceptable. Redis unreachable → the counters fall back to this process's memory
(each replica then allows the limit on its own) rather than blocking everyone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from handlers.decisions.decision_metrics import REDIS_ERRORS
from proxy.kernel.digests import sha256_hex
from proxy.kernel.redis import RedisClient, RedisUnavailable, redis_call

log = logging.getLogger("kratos_hooks.decisions")

LOCAL_KEYS_MAX = 100_000


def window_of(now: float, window: float) -> tuple[int, int]:
    """(window index, whole seconds until it ends — at least 1) for ``now`` (pure)."""
    index = int(now // window)
    return index, max(1, math.ceil((index + 1) * window - now))


class RateLimiter:
    def __init__(
        self,
        redis: Callable[[], RedisClient | None],
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._local: dict[str, int] = {}

    def _count_local(self, key: str) -> int:
        if len(self._local) > LOCAL_KEYS_MAX:
            self._local.clear()  # crude, bounded: old windows are never read again anyway
        self._local[key] = self._local.get(key, 0) + 1
        return self._local[key]

    async def hit(self, rule: str, scope: str, who: str, limit: int, window: float) -> int | None:
        """Count one request; the seconds to wait when over ``limit``, else None."""
        index, retry_after = window_of(self._clock(), window)
        tag = sha256_hex(who.encode())[:24]
        key = f"{self._prefix}decisions:rate:{rule}:{scope}:{tag}:{index}"
        client = self._redis()
        count: int
        if client is None:
            count = self._count_local(key)
        else:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.pexpire(key, int(window * 1000) + 1000)
                    count = int((await redis_call(pipe.execute()))[0])
            except RedisUnavailable as exc:
                REDIS_ERRORS.inc()
                log.warning("rate limit counted locally", extra={"error": str(exc)})
                count = self._count_local(key)
        return retry_after if count > limit else None
