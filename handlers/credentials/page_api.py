"""The token page's JSON API, under the same prefix and the same session (a Kratos cookie, or
``X-Session-Token`` for native apps and scripts).

    GET    /tokens/api/tokens                    {"tokens": [...], "revoked": [...], "csrf_token"}
    GET    /tokens/api/scopes                    the catalogue offered to this caller
    POST   /tokens/api/tokens                    {"name", "scopes", "expires_in_days" |
                                                  "expires_on": "YYYY-MM-DD" | "never": true}
                                                  → 201 {"token": secret, "record": {...}}
    POST   /tokens/api/tokens/{id}/regenerate    → 201 {"token": secret, "record": {...}}
    DELETE /tokens/api/tokens/{id}               → 200 {"record": {...}}

Cookie callers follow the page's CSRF rules: every POST and DELETE carries the session's
``X-CSRF-Token`` (from the listing) and must not come from another site; callers with a
session token send no cookie a browser could attach, so they need none.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from handlers.credentials import page_text
from handlers.credentials.csrf import cross_site
from handlers.credentials.page_common import PageContext, Who, json_error, json_reply
from handlers.credentials.service import Made
from handlers.credentials.store import StoreUnavailable
from handlers.credentials.tokens import is_token_id
from proxy.kernel.errors import error_document
from proxy.kernel.hooked import Hooked, Reply

MAX_JSON = 16 * 1024


def _made(made: Made) -> dict[str, Any]:
    return {"token": made.secret, "record": made.record.public()}


async def api(context: PageContext, request: Hooked, parts: list[str]) -> Reply:
    who = await context.who(request, tokens_too=True)
    if who == "unavailable":
        return json_error(503, "dependency_unavailable", "Kratos cannot be reached.", request)
    if who == "signed_out":
        return json_error(401, "unauthorized", "Sign in first.", request)
    method = request.method
    if method in {"POST", "DELETE"} and who.via == "cookie":
        presented = request.headers.get("X-CSRF-Token", "")
        if cross_site(request.headers) or not context.csrf.valid(who.session_id, presented):
            return json_error(403, "csrf_failed", "Send the session's X-CSRF-Token.", request)
    try:
        return await _route(context, request, who, method, parts)
    except StoreUnavailable:
        return json_error(503, "dependency_unavailable", "The token store is unavailable.", request)


async def _route(
    context: PageContext, request: Hooked, who: Who, method: str, parts: list[str]
) -> Reply:
    if parts == ["tokens"] and method == "GET":
        active, revoked = await context.mine(who)
        return json_reply(
            200,
            {
                "tokens": [r.public() for r in active],
                "revoked": [r.public() for r in revoked],
                "csrf_token": context.csrf.token(who.session_id),
            },
        )
    if parts == ["scopes"] and method == "GET":
        catalogue = context.credentials.catalogue
        offered = [
            {"name": s.name, "description": s.description} for s in catalogue.offered_to(who.roles)
        ]
        config = context.config
        return json_reply(
            200,
            {
                "scopes": offered,
                "expiry_presets_days": [int(d) for d in config.expiry_presets],
                "allow_never": config.allow_never,
                "max_days": config.max_days,
            },
        )
    if parts == ["tokens"] and method == "POST":
        return await _create(context, request, who)
    if len(parts) >= 2 and parts[0] == "tokens" and is_token_id(parts[1]):
        record = await context.own_token(who, parts[1])
        if record is None or record.revoked_at is not None:
            return json_error(404, "not_found", "No such active token.", request)
        if parts[2:] == ["regenerate"] and method == "POST":
            if context.needs_aal2(who):
                return json_error(403, "aal2_required", "A second factor is required.", request)
            made = await context.credentials.regenerate(record.id, by=who.identity_id, origin="api")
            if made is None:
                return json_error(404, "not_found", "No such active token.", request)
            return json_reply(201, _made(made))
        if not parts[2:] and method == "DELETE":
            gone = await context.credentials.revoke(record.id, by=who.identity_id)
            return json_reply(200, {"record": (gone or record).public()})
    return json_error(404, "not_found", "No such resource.", request)


async def _create(context: PageContext, request: Hooked, who: Who) -> Reply:
    if context.needs_aal2(who):
        return json_error(403, "aal2_required", "A second factor is required.", request)
    try:
        body = orjson.loads(await request.read(MAX_JSON, "The JSON body"))
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return json_error(400, "bad_request", "Send a JSON object.", request)
    config = context.config
    if body.get("never") is True:
        choice, date = "never", ""
    elif isinstance(body.get("expires_on"), str):
        choice, date = "date", body["expires_on"]
    else:
        choice, date = str(body.get("expires_in_days", "")), ""
    expires = page_text.expires_from(
        choice,
        date,
        presets=config.expiry_presets,
        allow_never=config.allow_never,
        max_days=config.max_days,
        now=time.time(),
    )
    scopes = body.get("scopes")
    scopes = [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else []
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    wanted = page_text.creation(str(name), scopes, expires, context.offered(who))
    if isinstance(wanted, dict):
        document = error_document(
            422,
            error_id="invalid_token_request",
            reason="Some fields are not valid; see details.",
            request_id=request.request_id,
            details=wanted,
        )
        return json_reply(422, document)
    made = await context.credentials.issue(
        "pat",
        owner=who.identity_id,
        name=wanted.name,
        scopes=wanted.scopes,
        expires_at=wanted.expires_at,
        created_by=who.identity_id,
        origin="api",
    )
    return json_reply(201, _made(made))
