"""Compatibility endpoints for callers that do not send logins through the proxy.

``POST /hooks/kratos/login-backoff/before-login`` judges an attempt and, when it is allowed,
counts it at once as a failure (these callers report successes only, through
``/after-login``, which resets the identifier's buckets): the older gateway's contract.

    before-login  {flow_id?, identifier?, client_ip?}
        200 {"allowed": true, "retry_after_seconds": 0}
        403 {"allowed": false, "reason": "identifier"|"ip", "message", "retry_after_seconds"}
    after-login   {identity_id?, identifier?, client_ip?}  → 200 {"reset": bool}

When the Kratos hooks have credentials (``HOOKS_API_KEYS`` / ``HOOKS_BASIC_AUTH``) these
endpoints require them too: whoever can call them can lock accounts out or forgive them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
from aiohttp import web

from handlers.health import Health
from handlers.hooks.auth import Credentials, check
from proxy.errors import BadRequest, Unauthorized
from proxy.guard.install import guard_context
from proxy.guard.keys import GUARD
from proxy.guard.respond import lockout_message, seconds
from proxy.keys import ROUTE, SETTINGS

BASE = "/hooks/kratos/login-backoff"
CREDENTIALS = web.AppKey("login_backoff_credentials", Credentials)


async def _body(request: web.Request) -> dict[str, Any]:
    credentials = request.app[CREDENTIALS]
    if credentials.configured and check(credentials, request.headers) != "ok":
        raise Unauthorized(headers={"WWW-Authenticate": 'Basic realm="kratos-hooks"'})
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequest("The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value.strip() or None


def _client_ip(body: dict[str, Any], request: web.Request) -> str:
    value = _field(body, "client_ip")
    if value is None:
        return request.remote or ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise BadRequest("client_ip must be an IP address") from None


async def before_login(request: web.Request) -> web.Response:
    request[ROUTE] = "login_backoff"
    guard = request.app[GUARD]
    body = await _body(request)
    identifier = _field(body, "identifier")
    flow_id = _field(body, "flow_id")
    subject = guard.subject(identifier, _client_ip(body, request))
    verdict, _ = await guard.begin(subject, count=True)
    if verdict.allowed:
        return web.json_response({"allowed": True, "retry_after_seconds": 0})
    wait = seconds(verdict.retry_after)
    if flow_id:
        await guard.remember_flow(flow_id, guard.clock() + wait)
    reason = "ip" if verdict.bucket in ("ip", "rate") else "identifier"
    return web.json_response(
        {
            "allowed": False,
            "reason": reason,
            "message": lockout_message(guard.config.message_id, wait)["text"],
            "retry_after_seconds": wait,
        },
        status=403,
        headers={"Retry-After": str(wait)},
    )


async def after_login(request: web.Request) -> web.Response:
    request[ROUTE] = "login_backoff"
    guard = request.app[GUARD]
    body = await _body(request)
    identifier = _field(body, "identifier")
    _field(body, "identity_id")  # accepted for the old contract; buckets are by identifier
    if identifier is None:
        return web.json_response({"reset": False})
    ip = _client_ip(body, request) if body.get("client_ip") else None
    await guard.reset(identifier, cause="after_login", ip=ip)
    return web.json_response({"reset": True})


def install_internal(app: web.Application, health: Health) -> None:
    """The INTERNAL_FEATURES installer."""
    app[CREDENTIALS] = Credentials.from_settings(app[SETTINGS].hooks)
    app.cleanup_ctx.append(guard_context)
    app.router.add_post(f"{BASE}/before-login", before_login)
    app.router.add_post(f"{BASE}/after-login", after_login)
