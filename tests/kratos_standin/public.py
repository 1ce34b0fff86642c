"""The public API app (port 4433)."""

from __future__ import annotations

from aiohttp import web

from . import bodies
from .errors import json_response
from .keys import APP_NAME_KEY, STATE_KEY
from .login import get_error, get_flow, init_api, init_browser
from .login_submit import submit_login
from .middleware import record_calls, render_errors
from .self_service import add_routes as add_self_service_routes
from .sessions import logout, logout_api, logout_browser, whoami
from .state import StandinState


async def health(_: web.Request) -> web.StreamResponse:
    return json_response(bodies.health_ok())


def create_public_app(state: StandinState) -> web.Application:
    app = web.Application(middlewares=[record_calls, render_errors])
    app[STATE_KEY] = state
    app[APP_NAME_KEY] = "public"
    router = app.router
    router.add_get("/health/alive", health, allow_head=False)
    router.add_get("/health/ready", health, allow_head=False)
    router.add_get("/self-service/login/browser", init_browser, allow_head=False)
    router.add_get("/self-service/login/api", init_api, allow_head=False)
    router.add_get("/self-service/login/flows", get_flow, allow_head=False)
    router.add_post("/self-service/login", submit_login)
    router.add_get("/self-service/errors", get_error, allow_head=False)
    add_self_service_routes(router)
    router.add_route("*", "/sessions/whoami", whoami)
    router.add_delete("/self-service/logout/api", logout_api)
    router.add_get("/self-service/logout/browser", logout_browser, allow_head=False)
    router.add_get("/self-service/logout", logout, allow_head=False)
    return app
