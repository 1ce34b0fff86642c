"""App factories: the public listener (the edge proxy) and the internal one (the sidecar).

``build_apps(settings)`` is the only way the process and the tests make them. Each external
resource is one ``cleanup_ctx`` that closes only what it opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector, web
from yarl import URL

from config.settings import Settings
from handlers.decisions.install import install_decisions
from handlers.health import Health, alive, ready
from handlers.hooks.install import install as install_hooks
from handlers.metrics import metrics
from proxy.edge.forwarder import Forwarder
from proxy.edge.logout_watch import install_logout_watch
from proxy.guard.compat import install_internal as install_login_backoff
from proxy.guard.install import install_public as install_login_guard
from proxy.kernel.kernel_keys import (
    FORWARDER,
    HEALTH,
    KRATOS_PUBLIC,
    LISTENER,
    PUBLIC_HOOKS,
    SETTINGS,
)
from proxy.kernel.middleware import observe
from proxy.kernel.redis import redis_context, redis_probe
from proxy.kernel.view import HookTable, dispatcher

# aiohttp would otherwise add headers the client never sent.
NO_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")


def upstream_session(settings: Settings, *, pool_size: int | None = None) -> ClientSession:
    """A pooled, keep-alive session that changes nothing it carries."""
    proxy = settings.proxy
    connector = TCPConnector(
        limit=pool_size or proxy.pool_size,
        limit_per_host=pool_size or proxy.pool_size,
        keepalive_timeout=proxy.keepalive_timeout,
        ttl_dns_cache=30,
    )
    return ClientSession(
        connector=connector,
        cookie_jar=DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=NO_AUTO_HEADERS,
        timeout=ClientTimeout(
            total=None, sock_connect=proxy.connect_timeout, sock_read=proxy.read_timeout
        ),
        trust_env=False,
    )


def session_context(
    key: web.AppKey[ClientSession], make: Callable[[Settings], ClientSession]
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        app[key] = make(app[SETTINGS])
        yield
        await app[key].close()

    return context


# Features that intercept some public routes (login guard, logout purge …) add them to the
# hook table, keyed on the canonical route; every other request goes to the forwarder.
PublicFeature = Callable[[web.Application, HookTable], None]
PUBLIC_FEATURES: list[PublicFeature] = [install_logout_watch, install_login_guard]


def create_public_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[observe],
        # Request bodies pass through as sent; Kratos' cookies can make long header lines.
        handler_args={"auto_decompress": False, "max_line_size": 16384, "max_field_size": 32768},
    )
    app[SETTINGS] = settings
    app[LISTENER] = "public"
    app[FORWARDER] = Forwarder(settings)
    app.cleanup_ctx.append(session_context(KRATOS_PUBLIC, upstream_session))
    app.cleanup_ctx.append(redis_context)
    hooks = app[PUBLIC_HOOKS] = HookTable()
    for install in PUBLIC_FEATURES:
        install(app, hooks)
    forwarder = app[FORWARDER]
    app.router.add_route("*", "/{tail:.*}", dispatcher(forwarder.view, hooks, forwarder.handle))
    return app


def _kratos_probe(app: web.Application) -> Callable[[], Any]:
    alive_url = URL(app[SETTINGS].kratos.public_url) / "health" / "alive"

    async def probe() -> dict[str, Any]:
        async with app[KRATOS_PUBLIC].get(alive_url, timeout=ClientTimeout(total=1.5)) as resp:
            return {"status": "ok" if resp.status == 200 else "down", "http_status": resp.status}

    return probe


# Features of the sidecar (hooks, decisions …): each adds its routes, its cleanup_ctx and its
# readiness probes to the internal app.
InternalFeature = Callable[[web.Application, Health], None]
INTERNAL_FEATURES: list[InternalFeature] = [
    install_decisions,
    install_hooks,
    install_login_backoff,
]


def create_internal_app(settings: Settings, health: Health) -> web.Application:
    app = web.Application(middlewares=[observe], client_max_size=settings.server.max_body_size)
    app[SETTINGS] = settings
    app[LISTENER] = "internal"
    app[HEALTH] = health
    app.cleanup_ctx.append(
        session_context(KRATOS_PUBLIC, lambda s: upstream_session(s, pool_size=32))
    )
    app.cleanup_ctx.append(redis_context)
    health.register("kratos_public", _kratos_probe(app))
    health.register("redis", redis_probe(app))
    app.router.add_get("/health/alive", alive)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    for install in INTERNAL_FEATURES:
        install(app, health)
    return app


def build_apps(settings: Settings) -> tuple[web.Application, web.Application, Health]:
    health = Health()
    return create_public_app(settings), create_internal_app(settings, health), health
