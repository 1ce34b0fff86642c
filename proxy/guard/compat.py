"""Compatibility endpoints for callers that do not send logins through the proxy.

``POST /hooks/kratos/login-backoff/before-login`` judges an attempt and, when it is allowed,
counts it at once as a failure (these callers report successes only, through
``/after-login``, which resets the identifier's buckets): the older gateway's contract.

    before-login  {flow_id?, identifier?, client_ip?}
        200 {"allowed": true, "retry_after_seconds": 0}
        403 {"allowed": false, "reason": "identifier"|"ip", "message", "retry_after_seconds"}
    after-login   {identity_id?, identifier?, client_ip?}
        200 {"reset": true}
        200 {"reset": false, "reason": "no_identifier"|"identity_not_found"|
                                       "kratos_admin_unavailable"|"no_password_identifier"}

``after-login`` with only an ``identity_id`` looks the identity up in Kratos' Admin API and
resets every password identifier it has. It always answers 200 at once: Kratos may be waiting
on it, and a missed reset only means the user waits out a backoff they had already earned.

Whoever can call these endpoints can lock accounts out or forgive them, so they pass the
Kratos hooks' own gate (``kernel.hook_gate``): the hooks' credentials
(``HOOKS_API_KEYS`` / ``HOOKS_BASIC_AUTH``), 503 naming them while none is configured (unless
``HOOKS_INSECURE_NO_AUTH``), 401 on a wrong or missing one, and ``HOOKS_MAX_BODY_SIZE``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from aiohttp import web

from proxy.guard.core import Guard
from proxy.guard.flows import lockout_message, seconds
from proxy.guard.guard_keys import GUARD
from proxy.guard.guard_metrics import AFTER_LOGIN_LOOKUPS
from proxy.guard.store import FlowHold
from proxy.guard.support import reset
from proxy.kernel.errors import BadRequest
from proxy.kernel.http_clients import api_session, breaker
from proxy.kernel.kernel_keys import HOOK_GATE, ROUTE, SETTINGS
from proxy.kernel.kratos_admin import AdminUnavailable, IdentityGone, KratosAdmin
from proxy.kernel.logs import fingerprint

log = logging.getLogger("kratos_hooks.guard")

BASE = "/hooks/kratos/login-backoff"
ADMIN = web.AppKey("login_backoff_kratos_admin", KratosAdmin)


def password_identifiers(identity: Mapping[str, Any]) -> list[str]:
    """The identifiers of an identity's password credential (as Kratos' Admin API lists
    them under ``credentials.password.identifiers``); none without a password."""
    credentials = identity.get("credentials")
    password = credentials.get("password") if isinstance(credentials, dict) else None
    found = password.get("identifiers") if isinstance(password, dict) else None
    if not isinstance(found, list):
        return []
    return [i for i in found if isinstance(i, str) and i.strip()]


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.app[HOOK_GATE].body(request)
    try:
        body = orjson.loads(raw)
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
    subject = guard.names.subject(identifier, guard.names.address(_client_ip(body, request)))
    verdict, _ = await guard.begin(subject, count=True)
    if verdict.allowed:
        return web.json_response({"allowed": True, "retry_after_seconds": 0})
    wait = seconds(verdict.retry_after)
    if flow_id:
        hold = FlowHold(guard.clock() + wait, rate=verdict.bucket == "rate")
        await guard.remember_flow(flow_id, hold)
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


async def _identifiers_of(admin: KratosAdmin, identity_id: str) -> tuple[list[str], str]:
    """The identity's password identifiers, or none and why."""
    try:
        identity = await admin.get_identity(identity_id)
    except (IdentityGone, AdminUnavailable) as exc:
        gone = isinstance(exc, IdentityGone)
        AFTER_LOGIN_LOOKUPS.labels("not_found" if gone else "unavailable").inc()
        log.warning(
            "after-login: identity lookup failed, no backoff reset",
            extra={
                "identity": fingerprint(identity_id),
                "error": "HTTP 404" if gone else str(exc),
            },
        )
        return [], "identity_not_found" if gone else "kratos_admin_unavailable"
    AFTER_LOGIN_LOOKUPS.labels("ok").inc()
    return password_identifiers(identity), "no_password_identifier"


async def after_login(request: web.Request) -> web.Response:
    request[ROUTE] = "login_backoff"
    guard = request.app[GUARD]
    body = await _body(request)
    identifier = _field(body, "identifier")
    identity_id = _field(body, "identity_id")
    ip = _client_ip(body, request) if body.get("client_ip") else None
    if identifier is not None:
        identifiers, reason = [identifier], ""
    elif identity_id is not None:
        identifiers, reason = await _identifiers_of(request.app[ADMIN], identity_id)
    else:
        identifiers, reason = [], "no_identifier"
    if not identifiers:
        return web.json_response({"reset": False, "reason": reason})
    for each in identifiers:
        await reset(guard, each, cause="after_login", ip=ip)
    return web.json_response({"reset": True})


async def admin_context(app: web.Application) -> AsyncIterator[None]:
    """Kratos' Admin API client of the after-login endpoint (its own pool and breaker)."""
    settings = app[SETTINGS]
    session = api_session(settings, pool_size=4)
    app[ADMIN] = KratosAdmin(
        session,
        settings.kratos.admin_url,
        token=settings.kratos.admin_token,
        timeout=settings.hooks.http_timeout,
        breaker=breaker(settings, "kratos_admin_login_backoff"),
    )
    yield
    await session.close()


def install_internal(app: web.Application, guard: Guard) -> None:
    """The compatibility endpoints on the internal listener, behind the hooks' gate."""
    app[GUARD] = guard
    app.cleanup_ctx.append(admin_context)
    app.router.add_post(f"{BASE}/before-login", before_login)
    app.router.add_post(f"{BASE}/after-login", after_login)
