"""The admin API for organisation API keys, on the internal listener (never the public one).

    GET    /admin/tokens/openapi.json              this API's OpenAPI 3.1 document
    POST   /admin/tokens/keys                      issue a key → 201 {"token", "record"}
    GET    /admin/tokens/keys?organization=ID      the organisation's keys (with revoked: 30 d)
    GET    /admin/tokens/keys/{id}                 one key and its audit trail
    POST   /admin/tokens/keys/{id}/regenerate      a new secret, same settings → 201
    DELETE /admin/tokens/keys/{id}                 revoke (every replica within a second)

Authenticated by an admin credential of its own, ``TOKENS_ADMIN_KEYS`` in
``TOKENS_ADMIN_KEY_HEADER`` (several, for rotation, compared in constant time as the hooks'
gate does) — not the hooks' keys: Kratos holds those in its configuration, and whoever can
call a Kratos hook must not be able to mint API keys. Without one configured the API answers
503 naming the setting (``HOOKS_INSECURE_NO_AUTH`` opens it, for laptops).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from handlers.credentials.service import DAY, Credentials, Made
from handlers.credentials.store import StoreUnavailable, TokenRecord
from handlers.credentials.tokens import is_token_id
from proxy.kernel.bodies import read_bounded
from proxy.kernel.errors import (
    BadRequest,
    DependencyUnavailable,
    KratosHooksError,
    NotFound,
    Unauthorized,
)
from proxy.kernel.hook_gate import Credentials as GateCredentials
from proxy.kernel.hook_gate import check
from proxy.kernel.kernel_keys import ROUTE, SETTINGS
from proxy.kernel.tokens import valid_scope

BASE = "/admin/tokens"
OPENAPI = (Path(__file__).parent / "openapi.json").read_bytes()  # read at import, served as is
REVOKED_WINDOW = 30 * DAY
CREDENTIALS = web.AppKey("tokens_admin_credentials", Credentials)
GATE = web.AppKey("tokens_admin_gate", GateCredentials)


class AdminNotConfigured(KratosHooksError):
    status = 503
    error_id = "admin_api_not_configured"
    message = "The API-key admin API is not enabled"


def _gate(request: web.Request) -> None:
    request[ROUTE] = "tokens_admin"
    verdict = check(request.app[GATE], request.headers)
    if verdict == "not_configured":
        raise AdminNotConfigured("Set TOKENS_ADMIN_KEYS to enable the API-key admin API")
    if verdict == "unauthorized":
        raise Unauthorized("Missing or invalid admin credentials")


def _json(status: int, document: Any) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(document),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _made(made: Made) -> dict[str, Any]:
    return {"token": made.secret, "record": made.record.public()}


def _field(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BadRequest(f"field '{name}': expected {kind.__name__}")
    return value


def parse_key_request(body: object, *, max_days: int, now: float) -> dict[str, Any]:
    """The issue request's fields, checked (pure); ``BadRequest`` naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("Expected a JSON object")
    organization = _field(body, "organization", str)
    name = _field(body, "name", str)
    if not organization or not organization.strip() or not name or not name.strip():
        raise BadRequest("fields 'organization' and 'name': expected non-empty strings")
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise BadRequest("field 'scopes': expected a non-empty list")
    if not all(isinstance(s, str) and valid_scope(s) for s in scopes):
        raise BadRequest("field 'scopes': expected action:resource scopes, e.g. read:users")
    days = _field(body, "expires_in_days", int)
    if days is not None and not 1 <= days <= max_days:
        raise BadRequest(f"field 'expires_in_days': expected 1 to {max_days}")
    rate = _field(body, "rate_limit_per_minute", int, 0) or 0
    if rate < 0:
        raise BadRequest("field 'rate_limit_per_minute': expected >= 0")
    return {
        "owner": organization.strip(),
        "name": name.strip()[:80],
        "scopes": tuple(sorted(set(scopes))),
        "expires_at": None if days is None else now + days * DAY,
        "rate_limit": rate,
    }


async def _body(request: web.Request) -> object:
    raw = await read_bounded(request, 16 * 1024)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("The body is not JSON") from None


async def openapi(request: web.Request) -> web.StreamResponse:
    request[ROUTE] = "tokens_admin"
    return web.Response(body=OPENAPI, content_type="application/json")


async def _key(request: web.Request) -> TokenRecord:
    token_id = request.match_info["token_id"]
    record = await request.app[CREDENTIALS].store.by_id(token_id) if is_token_id(token_id) else None
    if record is None or record.kind != "key":
        raise NotFound("No such API key")
    return record


def _store_errors(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        _gate(request)
        try:
            response: web.StreamResponse = await handler(request)
        except StoreUnavailable as exc:
            raise DependencyUnavailable("The token store is unavailable") from exc
        return response

    return wrapped


@_store_errors
async def issue_key(request: web.Request) -> web.StreamResponse:
    credentials = request.app[CREDENTIALS]
    settings = request.app[SETTINGS].tokens
    wanted = parse_key_request(await _body(request), max_days=settings.max_days, now=time.time())
    actor = "admin:" + request.headers.get("X-Actor", "api")[:60]
    made = await credentials.issue("key", created_by=actor, origin="admin", **wanted)
    return _json(201, _made(made))


@_store_errors
async def list_keys(request: web.Request) -> web.StreamResponse:
    organization = request.query.get("organization") or None
    records = await request.app[CREDENTIALS].store.listing(
        kind="key", owner=organization, revoked_since=time.time() - REVOKED_WINDOW
    )
    return _json(200, {"keys": [r.public() for r in records]})


@_store_errors
async def show_key(request: web.Request) -> web.StreamResponse:
    record = await _key(request)
    history = await request.app[CREDENTIALS].store.history(record.id)
    audit = [
        {"action": e.action, "actor": e.actor, "at": e.at, "detail": e.detail} for e in history
    ]
    return _json(200, {"record": record.public(), "audit": audit})


@_store_errors
async def regenerate_key(request: web.Request) -> web.StreamResponse:
    record = await _key(request)
    made = await request.app[CREDENTIALS].regenerate(record.id, by="admin:api", origin="admin")
    if made is None:
        raise NotFound("No such active API key")
    return _json(201, _made(made))


@_store_errors
async def revoke_key(request: web.Request) -> web.StreamResponse:
    record = await _key(request)
    revoked = await request.app[CREDENTIALS].revoke(record.id, by="admin:api")
    if revoked is None:
        raise NotFound("No such active API key")
    return _json(200, {"record": revoked.public()})


ROUTES = (
    ("GET", f"{BASE}/openapi.json", openapi),
    ("POST", f"{BASE}/keys", issue_key),
    ("GET", f"{BASE}/keys", list_keys),
    ("GET", f"{BASE}/keys/{{token_id}}", show_key),
    ("POST", f"{BASE}/keys/{{token_id}}/regenerate", regenerate_key),
    ("DELETE", f"{BASE}/keys/{{token_id}}", revoke_key),
)


def install_admin(app: web.Application, credentials: Credentials) -> None:
    settings = credentials.settings
    app[CREDENTIALS] = credentials
    app[GATE] = GateCredentials(
        header=settings.tokens.admin_key_header,
        api_keys=tuple(k.encode() for k in settings.tokens.admin_keys if k),
        basic=(),
        insecure=settings.hooks.insecure_no_auth,
    )
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
