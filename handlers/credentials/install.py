"""Wiring the credentials feature: one ``Credentials`` per process (``make_credentials``,
called by the composition root's ``Shared``), its routes on the public listener (the token
page and its JSON API, leak reports — hooks on the kernel's ``HookTable``) and on the internal
one (the API-key admin API and its OpenAPI document), its background work and its probe."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from config.settings import Settings
from handlers.credentials.admin_api import install_admin
from handlers.credentials.page import TokenPage
from handlers.credentials.page_common import PageContext
from handlers.credentials.service import Credentials
from handlers.credentials.store import NotMigrated, StoreUnavailable
from proxy.kernel.bus import Bus
from proxy.kernel.health_registry import Health
from proxy.kernel.hooked import HookTable
from proxy.kernel.redis import RedisClient
from proxy.kernel.sessions import Sessions

log = logging.getLogger("kratos_hooks.credentials")
PAGE_METHODS = ("GET", "HEAD", "POST", "DELETE")


def make_credentials(settings: Settings, redis: RedisClient | None, bus: Bus) -> Credentials | None:
    """The process's credentials feature; None when ``TOKENS_ENABLED`` is off."""
    if not settings.tokens.enabled:
        return None
    return Credentials(settings, redis, bus)


def _probe(credentials: Credentials) -> Any:
    async def probe() -> dict[str, Any]:
        store = credentials.store
        report: dict[str, Any] = {
            "backend": store.backend,
            "revocations_via": credentials.revocations.mode,
            "cached": len(credentials.cache),
        }
        if store.backend == "sqlite":  # opened with the first token: a file, not a dependency
            return report | {"status": "embedded"}
        try:
            await store.open()
        except (NotMigrated, StoreUnavailable) as exc:
            return report | {"status": "down", "error": str(exc)}
        return report | {"status": "ok"}

    return probe


def install_public(hooks: HookTable, credentials: Credentials, sessions: Sessions) -> None:
    """The token page, its JSON API and the leak reports: one prefix on the public listener."""
    settings = credentials.settings
    if not settings.tokens.page_path:
        return
    context = PageContext(settings, credentials, sessions)
    if not context.csrf_shared:
        log.warning(
            "neither TOKENS_CSRF_SECRET nor BACKOFF_SECRET is set: the token page's forms work "
            "only on the replica that served them; set TOKENS_CSRF_SECRET (the same everywhere)"
        )
    page = TokenPage(context)
    for method in PAGE_METHODS:
        hooks.add_prefix(method, settings.tokens.page_path, page)


def install_internal(app: web.Application, health: Health, credentials: Credentials) -> None:
    """Background work, readiness, and the admin API on the internal listener."""
    app.cleanup_ctx.append(credentials.prepared)
    app.cleanup_ctx.append(credentials.context)
    health.register("tokens_store", _probe(credentials))
    install_admin(app, credentials)
