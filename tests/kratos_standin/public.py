"""The public API app (port 4433)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from . import bodies
from .errors import json_response
from .keys import APP_NAME_KEY, STATE_KEY
from .login import get_error, get_flow, init_api, init_browser
from .login_submit import submit_login
from .middleware import record_calls, render_errors
from .router import WHOAMI_METHODS, kratos_router
from .self_service import routes as self_service_routes
from .sessions import logout, logout_api, logout_browser, whoami
from .state import StandinState


async def health(_: web.Request) -> web.StreamResponse:
    return json_response(bodies.health_ok())


def _table(routes: list[tuple[str, str, Handler]]) -> dict[str, Handler]:
    return {f"{method} {path}": handler for method, path, handler in routes}


def create_public_app(state: StandinState) -> web.Application:
    app = web.Application(middlewares=[record_calls, render_errors])
    app[STATE_KEY] = state
    app[APP_NAME_KEY] = "public"
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/health/alive", health),
        ("GET", "/health/ready", health),
        ("GET", "/self-service/login/browser", init_browser),
        ("GET", "/self-service/login/api", init_api),
        ("GET", "/self-service/login/flows", get_flow),
        ("POST", "/self-service/login", submit_login),
        ("GET", "/self-service/login", submit_login),  # links and OIDC callbacks use GET
        ("GET", "/self-service/errors", get_error),
        *self_service_routes(),
        *((method, "/sessions/whoami", whoami) for method in WHOAMI_METHODS),
        ("DELETE", "/self-service/logout/api", logout_api),
        ("GET", "/self-service/logout/browser", logout_browser),
        ("GET", "/self-service/logout", logout),
    ]
    app.router.add_route("*", "/{tail:.*}", kratos_router(_table(routes)))
    return app
