"""Logout purges: this process, Redis, and every other replica over pub/sub.

The edge announces ``SessionEnded`` on the bus when Kratos confirms a logout;
``Purger.session_ended`` (subscribed by the decisions' wiring) turns the credential's entry
into a "logged out" marker in this process's cache and in Redis (for the whole cache TTL, so
a look-up that was in flight cannot write the session back), and publishes its key — a hash,
never the credential. ``Purger.listen`` runs on every replica and applies what the others
publish. A listener that lost Redis may have missed purges, so after reconnecting it empties
the in-process cache: the next decisions ask Redis or Kratos again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import redis.asyncio as aioredis

from handlers.decisions.decision_metrics import REDIS_ERRORS, SESSION_PURGES
from handlers.decisions.session_cache import (
    Entry,
    RedisGetter,
    SessionCache,
    encode,
    purge_channel,
    session_key,
)
from handlers.decisions.whoami import WhoamiResult, credential_key
from proxy.kernel.bus import SessionEnded
from proxy.kernel.logs import fingerprint
from proxy.kernel.redis import RedisUnavailable, redis_call, redis_errors

log = logging.getLogger("kratos_hooks.decisions")

_KEY = re.compile(r"[0-9a-f]{64}")
RECONNECT_MAX = 30.0


class Purger:
    """The purges of one process's session cache."""

    def __init__(self, cache: SessionCache, redis: RedisGetter, prefix: str, ttl: float) -> None:
        self._cache = cache
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl

    async def session_ended(self, event: SessionEnded) -> None:
        """Close the cache window for a logged-out credential here and on every replica."""
        key = credential_key(event.credential)
        self._cache.purge_local(key)
        SESSION_PURGES.labels("local").inc()
        log.info("session cache purged after logout", extra={"credential": fingerprint(key)})
        client = self._redis()
        if client is None:
            return
        marker = Entry(WhoamiResult("invalid"), time.time() + self._ttl, purged=True)
        try:
            async with client.pipeline(transaction=False) as pipe:
                pipe.set(
                    session_key(self._prefix, key), encode(marker), px=max(1, int(self._ttl * 1000))
                )
                pipe.publish(purge_channel(self._prefix), key)
                await redis_call(pipe.execute())
        except RedisUnavailable as exc:
            REDIS_ERRORS.inc()
            log.warning("logout purge not shared with other replicas", extra={"error": str(exc)})

    async def _listen_once(self, client: aioredis.Redis, after_outage: bool) -> None:
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(purge_channel(self._prefix))
            if after_outage:
                self._cache.flush_local()
                log.info("logout purge listener is back: in-process session cache emptied")
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if not message or message.get("type") != "message":
                    continue
                data = message.get("data")
                key = data.decode() if isinstance(data, bytes) else str(data)
                if _KEY.fullmatch(key):
                    self._cache.purge_local(key)
                    SESSION_PURGES.labels("pubsub").inc()
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def listen(self, client: aioredis.Redis) -> None:
        """Apply every replica's logout purges to this process's cache, reconnecting forever."""
        delay = 0.0
        while True:
            try:
                with redis_errors():
                    await self._listen_once(client, after_outage=delay > 0)
            except RedisUnavailable as exc:
                delay = min(RECONNECT_MAX, max(0.5, delay * 2))
                REDIS_ERRORS.inc()
                log.warning(
                    "logout purge listener lost redis",
                    extra={"error": str(exc), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
