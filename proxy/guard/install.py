"""Wiring the guard: one ``Guard`` per process (``make_guard``, called once by the
composition root's ``Shared``), its hooks on the public listener and its compatibility
endpoints on the internal one (``compat``). Nothing here is module state: the in-memory store,
the degraded-mode limiter and a generated secret belong to the ``Guard`` that was made."""

from __future__ import annotations

import logging

from config.settings import Settings
from proxy.guard.core import Guard
from proxy.guard.identity import PROCESS_SECRET, Keyer
from proxy.guard.login_hooks import flow_view, login_submit
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore, Store
from proxy.guard.windows import limited
from proxy.kernel.hooked import HookTable
from proxy.kernel.redis import RedisClient
from proxy.kernel.redis_pipe import RedisPipe

log = logging.getLogger("kratos_hooks.guard")


def make_guard(
    settings: Settings, client: RedisClient | None, pipe: RedisPipe | None = None
) -> Guard:
    """The process's guard: buckets in Redis (``client``; its scripts over ``pipe`` when
    given), else in this process."""
    config = settings.backoff
    secret = config.secret
    if not secret:
        secret = PROCESS_SECRET
        log.warning(
            "BACKOFF_SECRET is not set: bucket names use a random key made at start-up, so "
            "other replicas and the next restart do not share this backoff state; "
            "set BACKOFF_SECRET (the same on every replica)"
        )
    store: Store = (
        RedisStore(client, settings.store.redis_key_prefix, pipe=pipe)
        if client is not None
        else MemoryStore(max_keys=1_000_000)
    )
    return Guard(
        settings, store, fallback=MemoryStore(config.fallback_max_keys), keyer=Keyer(secret)
    )


def install_public(hooks: HookTable, guard: Guard) -> None:
    """The guard's hooked routes on the public listener."""
    config = guard.config
    if config.enabled:
        login = login_submit(guard)
        hooks.add("POST", "/self-service/login", login)
        hooks.add("GET", "/self-service/login", login)
        hooks.add("GET", "/self-service/login/flows", flow_view(guard, "login"))
    for flow, limit in (
        ("registration", config.rate_registration),
        ("recovery", config.rate_recovery),
        ("verification", config.rate_verification),
    ):
        if limit > 0:
            hooks.add("POST", f"/self-service/{flow}", limited(guard, flow, limit))
            hooks.add("GET", f"/self-service/{flow}/flows", flow_view(guard, flow))
