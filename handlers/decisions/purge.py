"""Logout purges: this process, Redis, and every other replica over pub/sub.

The edge proxy that sees a successful logout calls ``publish_purge``: the credential's
entry becomes a "logged out" marker in every cache of this process and in Redis (for the
whole cache TTL, so a look-up that was in flight cannot write the session back), and its
key — a hash, never the credential — is published. ``listen_purges`` runs on every
replica's internal app and applies what others publish. A listener that lost Redis may have
missed purges, so after reconnecting it empties the in-process caches: the next decisions
ask Redis or Kratos again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time

import redis.asyncio as aioredis

from handlers.decisions.decision_metrics import REDIS_ERRORS, SESSION_PURGES
from handlers.decisions.session_cache import (
    REDIS_FAILURES,
    Entry,
    caches_in_process,
    encode,
    purge_channel,
    session_key,
)
from handlers.decisions.whoami import WhoamiResult

log = logging.getLogger("kratos_hooks.decisions")

_KEY = re.compile(r"[0-9a-f]{64}")
RECONNECT_MAX = 30.0


def purge_in_process(key: str, origin: str = "local") -> None:
    for cache in caches_in_process():
        cache.purge_local(key)
    SESSION_PURGES.labels(origin).inc()


async def publish_purge(client: aioredis.Redis | None, prefix: str, key: str, ttl: float) -> None:
    """Close the cache window for a logged-out credential here and on every replica."""
    purge_in_process(key)
    if client is None:
        return
    marker = Entry(WhoamiResult("invalid"), time.time() + ttl, purged=True)
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.set(session_key(prefix, key), encode(marker), px=max(1, int(ttl * 1000)))
            pipe.publish(purge_channel(prefix), key)
            await pipe.execute()
    except REDIS_FAILURES as exc:
        REDIS_ERRORS.inc()
        log.warning(
            "logout purge not shared with other replicas", extra={"error": type(exc).__name__}
        )


async def _listen_once(client: aioredis.Redis, channel: str, after_outage: bool) -> None:
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(channel)
        if after_outage:
            for cache in caches_in_process():
                cache.flush_local()
            log.info("logout purge listener is back: in-process session cache emptied")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if not message or message.get("type") != "message":
                continue
            data = message.get("data")
            key = data.decode() if isinstance(data, bytes) else str(data)
            if _KEY.fullmatch(key):
                purge_in_process(key, "pubsub")
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def listen_purges(client: aioredis.Redis, prefix: str) -> None:
    """Apply every replica's logout purges to this process's caches, reconnecting forever."""
    channel = purge_channel(prefix)
    delay = 0.0
    while True:
        try:
            await _listen_once(client, channel, after_outage=delay > 0)
        except REDIS_FAILURES as exc:
            delay = min(RECONNECT_MAX, max(0.5, delay * 2))
            REDIS_ERRORS.inc()
            log.warning(
                "logout purge listener lost redis",
                extra={"error": type(exc).__name__, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
