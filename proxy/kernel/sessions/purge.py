"""Logout purges: this process, Redis, and every other replica over pub/sub.

The edge announces ``SessionEnded`` on the bus when Kratos confirms a logout;
``Purger.session_ended`` (subscribed by the decisions' wiring) turns the credential's entry
into a "logged out" marker in this process's cache and in Redis (for the whole cache TTL, so
a look-up that was in flight cannot write the session back), and publishes its key — a hash,
never the credential. ``Purger.listen`` runs on every replica and applies what the others
publish. A listener that lost Redis may have missed purges, so after reconnecting it empties
the in-process cache: the next decisions ask Redis or Kratos again.

The same on every topology ``REDIS_URL`` names: on a Cluster a PUBLISH sent to any node
reaches the subscribers of every node, and each replica listens on one node of its own
(``kernel.redis.subscribe``); behind Sentinel a failover drops the listener's connection,
which is then re-made to the new master — an outage like any other, so the cache is emptied.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

from proxy.kernel.bus import SessionEnded
from proxy.kernel.logs import fingerprint
from proxy.kernel.redis import (
    RedisClient,
    RedisUnavailable,
    publish,
    redis_call,
    redis_errors,
    subscribe,
)
from proxy.kernel.sessions.cache import (
    Entry,
    RedisGetter,
    SessionCache,
    encode,
    purge_channel,
    session_key,
)
from proxy.kernel.sessions.metrics import REDIS_ERRORS, SESSION_PURGES
from proxy.kernel.sessions.whoami import WhoamiResult, credential_key

# The logger name operators already filter on (these look-ups began as the decisions').
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
        self._subscribed = False

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
        # Two round trips, not a pipeline: a Cluster cannot pipeline a PUBLISH, and the marker
        # and the message reach different nodes anyway. The marker first: a replica that
        # hears the message and misses its own memory finds the marker in Redis.
        try:
            px = max(1, int(self._ttl * 1000))
            await redis_call(client.set(session_key(self._prefix, key), encode(marker), px=px))
            await redis_call(publish(client, purge_channel(self._prefix), key))
        except RedisUnavailable as exc:
            REDIS_ERRORS.inc()
            log.warning("logout purge not shared with other replicas", extra={"error": str(exc)})

    async def _listen_once(self, client: RedisClient, after_outage: bool) -> None:
        async with subscribe(client, purge_channel(self._prefix)) as subscription:
            self._subscribed = True
            if after_outage:
                self._cache.flush_local()
                log.info("logout purge listener is back: in-process session cache emptied")
            while True:
                data = await subscription.message(timeout=1.0)
                if data is None:
                    continue
                key = data.decode(errors="replace")
                if _KEY.fullmatch(key):
                    self._cache.purge_local(key)
                    SESSION_PURGES.labels("pubsub").inc()

    async def listen(self, client: RedisClient) -> None:
        """Apply every replica's logout purges to this process's cache, reconnecting forever."""
        delay, outage = 0.0, False
        while True:
            try:
                with redis_errors():
                    await self._listen_once(client, after_outage=outage)
            except RedisUnavailable as exc:
                # Back off while reconnecting fails; a subscription that worked starts over
                # (a Sentinel failover every hour must not grow the wait to its cap).
                delay = 0.5 if self._subscribed else min(RECONNECT_MAX, max(0.5, delay * 2))
                self._subscribed, outage = False, True
                REDIS_ERRORS.inc()
                log.warning(
                    "logout purge listener lost redis",
                    extra={"error": str(exc), "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
