"""The composition root, with ``shared`` and ``server``: the only modules that know every
feature. ``public_hooks`` is the public listener's hooked-route table (the listener itself is
the wire data path, ``proxy/edge/wire``, started by ``server``); ``create_internal_app`` is the
sidecar's aiohttp app.

Each external resource the internal app owns is one ``cleanup_ctx`` that closes only what it
opened; what both listeners share (Redis, the guard, the bus) is ``Shared``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import ClientTimeout, web
from yarl import URL

from handlers.credentials.install import install_internal as install_credentials
from handlers.credentials.install import install_public as install_token_page
from handlers.decisions.install import install_decisions
from handlers.health import install_health
from handlers.hooks.install import install as install_hooks
from proxy.edge.logout_watch import install_logout_watch
from proxy.guard.compat import install_internal as install_backoff_compat
from proxy.guard.install import install_public as install_login_guard
from proxy.kernel.hooked import HookTable
from proxy.kernel.http_clients import session_context, upstream_session
from proxy.kernel.kernel_keys import HOOK_GATE, KRATOS_PUBLIC, LISTENER, REDIS, SETTINGS
from proxy.kernel.middleware import observe
from proxy.kernel.redis import warm_up
from proxy.shared import Shared


def _base(shared: Shared, listener: str, **kwargs: Any) -> web.Application:
    app = web.Application(middlewares=[observe], **kwargs)
    app[SETTINGS] = shared.settings
    app[LISTENER] = listener
    app[REDIS] = shared.redis
    return app


def public_hooks(shared: Shared) -> HookTable:
    """The public routes features hook, keyed on the canonical route; every other request
    is forwarded untouched."""
    hooks = HookTable()
    install_logout_watch(hooks, shared.bus, shared.settings.kratos.session_cookie)
    install_login_guard(hooks, shared.guard)
    if shared.credentials is not None:
        install_token_page(hooks, shared.credentials, shared.sessions)
    return hooks


def _kratos_probe(app: web.Application) -> Callable[[], Any]:
    alive_url = URL(app[SETTINGS].kratos.public_url) / "health" / "alive"

    async def probe() -> dict[str, Any]:
        async with app[KRATOS_PUBLIC].get(alive_url, timeout=ClientTimeout(total=1.5)) as resp:
            return {"status": "ok" if resp.status == 200 else "down", "http_status": resp.status}

    return probe


async def _redis_warm_up(app: web.Application) -> AsyncIterator[None]:
    """Connect to Redis in the background at start-up (``kernel.redis.warm_up``): never
    holds start-up, even when Redis is down."""
    client = app[REDIS]
    task = asyncio.create_task(warm_up(client), name="redis-warm-up") if client else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_internal_app(shared: Shared) -> web.Application:
    settings = shared.settings
    app = _base(shared, "internal", client_max_size=settings.server.max_body_size)
    app[HOOK_GATE] = shared.hook_gate
    app.cleanup_ctx.append(_redis_warm_up)
    app.cleanup_ctx.append(
        session_context(KRATOS_PUBLIC, lambda s: upstream_session(s, pool_size=32))
    )
    health = shared.health
    health.register("kratos_public", _kratos_probe(app))
    install_health(app, health)
    app.cleanup_ctx.append(shared.sessions.context)
    credentials = shared.credentials
    install_decisions(app, health, shared.sessions, credentials.verifier if credentials else None)
    if credentials is not None:
        install_credentials(app, health, credentials)
    install_hooks(app, health, shared.bus)
    install_backoff_compat(app, shared.guard)
    return app
