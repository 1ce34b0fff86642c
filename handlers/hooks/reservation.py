"""Once-per-identity reservations shared by every replica (Redis ``SET NX EX``).

``reserve`` answers True (ours), False (someone already has it) or None (Redis is not
configured or not answering): then the outbox's unique key is the only guard, which is
still atomic, just not remembered beyond the outbox's own retention.
"""

from __future__ import annotations

import logging

from handlers.hooks.hook_metrics import RESERVATION_ERRORS
from proxy.kernel.redis import RedisClient, RedisUnavailable, redis_call

log = logging.getLogger("kratos_hooks.hooks.reservation")


class Reservations:
    def __init__(self, client: RedisClient | None, prefix: str, retention: int) -> None:
        self.client = client
        self.prefix = f"{prefix}hooks:once:"
        self.retention = max(1, retention)

    async def reserve(self, key: str) -> bool | None:
        if self.client is None:
            return None
        try:
            return bool(
                await redis_call(
                    self.client.set(self.prefix + key, b"1", nx=True, ex=self.retention)
                )
            )
        except RedisUnavailable as exc:
            RESERVATION_ERRORS.labels("reserve").inc()
            log.warning("reservation store unavailable", extra={"error": str(exc)})
            return None

    async def release(self, key: str) -> None:
        """Give a reservation back, so a retry by Kratos is not taken for a duplicate."""
        if self.client is None:
            return
        try:
            await redis_call(self.client.delete(self.prefix + key))
        except RedisUnavailable as exc:
            RESERVATION_ERRORS.labels("release").inc()
            log.warning("reservation not released", extra={"error": str(exc)})
