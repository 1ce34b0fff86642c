"""Wiring: the guard's routes on the public app, and one ``Guard`` per app made at start-up.

The in-memory store (no ``REDIS_URL``), the degraded-mode limiter and a generated secret are
per process *and* per configuration, shared by the public and internal listeners so the
compatibility endpoints and the proxy see the same buckets.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web

from config.settings import Settings
from proxy.guard.core import Guard
from proxy.guard.guard_keys import GUARD
from proxy.guard.handler import flow_view, login_submit
from proxy.guard.identity import PROCESS_SECRET, Keyer
from proxy.guard.ratelimit import limited
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore, Store
from proxy.kernel.kernel_keys import SETTINGS
from proxy.kernel.redis import make_client
from proxy.kernel.view import HookTable

log = logging.getLogger("kratos_hooks.guard")


@dataclass(frozen=True, slots=True)
class _Shared:
    keyer: Keyer
    embedded: MemoryStore
    fallback: MemoryStore


# Keyed by the Settings object itself (identity, not equality): two services started in one
# test process never share buckets, the two listeners of one service always do.
_shared: list[tuple[Settings, _Shared]] = []


def shared_for(settings: Settings) -> _Shared:
    for known, shared in _shared:
        if known is settings:
            return shared
    config = settings.backoff
    secret = config.secret
    if not secret:
        secret = PROCESS_SECRET
        log.warning(
            "BACKOFF_SECRET is not set: bucket names use a random key made at start-up, so "
            "other replicas and the next restart do not share this backoff state; "
            "set BACKOFF_SECRET (the same on every replica)"
        )
    shared = _Shared(
        Keyer(secret), MemoryStore(max_keys=1_000_000), MemoryStore(config.fallback_max_keys)
    )
    _shared.append((settings, shared))
    return shared


def make_guard(settings: Settings, client: aioredis.Redis | None) -> Guard:
    shared = shared_for(settings)
    store: Store = (
        RedisStore(client, settings.store.redis_key_prefix)
        if client is not None
        else shared.embedded
    )
    return Guard(settings, store, fallback=shared.fallback, keyer=shared.keyer)


async def guard_context(app: web.Application) -> AsyncIterator[None]:
    """The guard and its own Redis client: one without per-socket timeouts, since the store
    bounds each call itself (two calls per login, on the login's path)."""
    settings = app[SETTINGS]
    url = settings.store.redis_url
    client = make_client(url, socket_timeouts=False) if url else None
    app[GUARD] = guard = make_guard(settings, client)
    yield
    await guard.drain()  # attempts still settling land before Redis closes
    if client is not None:
        await client.aclose()


def install_public(app: web.Application, hooks: HookTable) -> None:
    """The PUBLIC_FEATURES installer."""
    config = app[SETTINGS].backoff
    app.cleanup_ctx.append(guard_context)
    if config.enabled:
        hooks.add("POST", "/self-service/login", login_submit)
        hooks.add("GET", "/self-service/login", login_submit)
        hooks.add("GET", "/self-service/login/flows", flow_view("login"))
    for flow, limit in (
        ("registration", config.rate_registration),
        ("recovery", config.rate_recovery),
        ("verification", config.rate_verification),
    ):
        if limit > 0:
            hooks.add("POST", f"/self-service/{flow}", limited(flow, limit))
            hooks.add("GET", f"/self-service/{flow}/flows", flow_view(flow))
