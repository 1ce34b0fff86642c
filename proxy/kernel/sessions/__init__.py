"""Kratos session look-ups, shared by every feature that needs to know who a session is:
the decisions (session cookie and session token rules) and the credentials' token page.

    feature ─► Sessions.cache ─► local LRU ─► Redis ─► Kratos whoami   (each only on a miss)
    edge logout ─► bus SessionEnded ─► Sessions.purger ─► here, Redis, every replica

One ``Sessions`` per process, made by the composition root (``Shared``): one cache, so a
session the token page looked up is warm for the decisions and a logout purges it for both.
``context`` is the internal app's ``cleanup_ctx`` that runs the purge listener; ``close``
ends the whoami pool after both listeners drained.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from config.settings import Settings
from proxy.kernel.bus import Bus, SessionEnded
from proxy.kernel.redis import RedisClient
from proxy.kernel.sessions.cache import SessionCache
from proxy.kernel.sessions.purge import Purger
from proxy.kernel.sessions.whoami import Credential, WhoamiClient, WhoamiResult

__all__ = ["Credential", "SessionCache", "Sessions", "WhoamiResult"]


class Sessions:
    def __init__(self, settings: Settings, redis: RedisClient | None, bus: Bus) -> None:
        config = settings.decisions
        prefix = settings.store.redis_key_prefix
        self.cookie_name = settings.kratos.session_cookie
        self.redis = redis
        self.whoami = WhoamiClient(
            settings.kratos.public_url,
            config.whoami_timeout,
            keepalive=settings.proxy.keepalive_timeout,
        )
        self.cache = SessionCache(
            self.whoami,
            lambda: redis,
            prefix=prefix,
            ttl=config.cache_ttl,
            negative_ttl=config.negative_cache_ttl,
            size=config.cache_size,
        )
        self.purger = Purger(self.cache, lambda: redis, prefix, config.cache_ttl)
        bus.subscribe(SessionEnded, self.purger.session_ended)

    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """Logouts other replicas publish purge this process's cache while the app runs."""
        task = None
        if self.redis is not None:
            task = asyncio.create_task(
                self.purger.listen(self.redis), name="decisions-purge-listener"
            )
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        await self.whoami.close()
