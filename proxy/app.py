"""App factories: the public listener (the edge proxy) and the internal one (the sidecar) —
the composition root, with ``shared`` and ``server``: the only modules that know every feature.

``build_apps(shared)`` is the only way the process and the tests make them. Each external
resource an app owns is one ``cleanup_ctx`` that closes only what it opened; what both apps
share (Redis, the guard, the bus) is ``Shared``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import ClientTimeout, web
from yarl import URL

from handlers.decisions.install import install_decisions
from handlers.health import install_health
from handlers.hooks.install import install as install_hooks
from proxy.edge.aiohttp_hooked import dispatcher
from proxy.edge.edge_keys import FORWARDER
from proxy.edge.forwarder import Forwarder
from proxy.edge.logout_watch import install_logout_watch
from proxy.guard.compat import install_internal as install_backoff_compat
from proxy.guard.install import install_public as install_login_guard
from proxy.kernel.hooked import HookTable
from proxy.kernel.http_clients import session_context, upstream_session
from proxy.kernel.kernel_keys import HOOK_GATE, KRATOS_PUBLIC, LISTENER, REDIS, SETTINGS
from proxy.kernel.middleware import observe
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
    return hooks


def create_public_app(shared: Shared) -> web.Application:
    app = _base(
        shared,
        "public",
        # Request bodies pass through as sent; Kratos' cookies can make long header lines.
        handler_args={"auto_decompress": False, "max_line_size": 16384, "max_field_size": 32768},
    )
    app[FORWARDER] = forwarder = Forwarder(shared.settings)
    app.cleanup_ctx.append(session_context(KRATOS_PUBLIC, upstream_session))
    app.router.add_route("*", "/{tail:.*}", dispatcher(forwarder, public_hooks(shared)))
    return app


def _kratos_probe(app: web.Application) -> Callable[[], Any]:
    alive_url = URL(app[SETTINGS].kratos.public_url) / "health" / "alive"

    async def probe() -> dict[str, Any]:
        async with app[KRATOS_PUBLIC].get(alive_url, timeout=ClientTimeout(total=1.5)) as resp:
            return {"status": "ok" if resp.status == 200 else "down", "http_status": resp.status}

    return probe


def create_internal_app(shared: Shared) -> web.Application:
    settings = shared.settings
    app = _base(shared, "internal", client_max_size=settings.server.max_body_size)
    app[HOOK_GATE] = shared.hook_gate
    app.cleanup_ctx.append(
        session_context(KRATOS_PUBLIC, lambda s: upstream_session(s, pool_size=32))
    )
    health = shared.health
    health.register("kratos_public", _kratos_probe(app))
    install_health(app, health)
    install_decisions(app, health, shared.bus)
    install_hooks(app, health)
    install_backoff_compat(app, shared.guard)
    return app


def build_apps(shared: Shared) -> tuple[web.Application, web.Application]:
    return create_public_app(shared), create_internal_app(shared)
