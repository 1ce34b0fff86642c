"""The admin API app (port 4434): identities and their sessions."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web
from yarl import URL

from . import bodies
from .errors import KratosError, bad_request, json_response, not_found
from .jsonpatch import PatchError, apply_patch
from .keys import APP_NAME_KEY, STATE_KEY
from .middleware import record_calls, render_errors
from .negotiation import request_url
from .state import StandinState
from .timefmt import rfc3339

DEFAULT_PAGE_SIZE = 250
MAX_PAGE_SIZE = 1000
_FIRST_PAGE_TOKEN = "00000000-0000-0000-0000-000000000000"
# ory/kratos identity/handler.go denies these in PATCH; both spellings of the timestamp.
DENIED_PATCH_PATHS = ("/id", "/stateChangedAt", "/state_changed_at", "/credentials")
# What survives the round trip through Kratos' Identity struct after a patch.
_IDENTITY_FIELDS = frozenset(
    {
        "id",
        "schema_id",
        "schema_url",
        "state",
        "state_changed_at",
        "traits",
        "verifiable_addresses",
        "recovery_addresses",
        "metadata_public",
        "metadata_admin",
        "created_at",
        "updated_at",
        "organization_id",
        "external_id",
    }
)


def _state(request: web.Request) -> StandinState:
    return request.app[STATE_KEY]


def _identity_or_404(state: StandinState, identity_id: str) -> dict[str, Any]:
    identity = state.identities.get(identity_id)
    if identity is None:
        raise not_found()
    return identity


def _render(
    state: StandinState, identity_id: str, *, with_credentials: bool = True
) -> dict[str, Any]:
    return bodies.admin_identity(
        state.identities[identity_id],
        state.passwords.get(identity_id),
        with_credentials=with_credentials,
    )


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Unable to decode JSON payload: {exc}") from exc


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError as exc:
        raise bad_request("The page_size parameter must be an integer.") from exc
    if size < 1:
        raise bad_request("The page_size parameter must be at least 1.")
    return min(size, MAX_PAGE_SIZE)


def _page_link(base: URL, size: int, token: str, rel: str) -> str:
    return f'<{base.with_query(page_size=str(size), page_token=token)}>; rel="{rel}"'


async def list_identities(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    size = _page_size(request.query.get("page_size"))
    token = request.query.get("page_token") or _FIRST_PAGE_TOKEN
    try:
        uuid.UUID(token)
    except ValueError as exc:
        raise bad_request("The page_token parameter is invalid.") from exc

    wanted = request.query.get("credentials_identifier")
    ids = sorted(i for i in state.identities if i > token)
    if wanted is not None:
        match = state.find_by_identifier(wanted)
        ids = [i for i in ids if i == match]
    page, more = ids[:size], len(ids) > size
    items = [_render(state, i, with_credentials=wanted is not None) for i in page]

    base = URL(request_url(request)).with_query(None)
    links = [_page_link(base, size, _FIRST_PAGE_TOKEN, "first")]
    if more:
        links.append(_page_link(base, size, page[-1], "next"))
    return json_response(items, headers={"Link": ",".join(links)})


async def get_identity(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    identity_id = request.match_info["id"]
    _identity_or_404(state, identity_id)
    return json_response(_render(state, identity_id))


def _check_identity(identity: dict[str, Any]) -> None:
    if identity.get("state") not in {"active", "inactive"}:
        raise bad_request(f"identity state is not valid: {identity.get('state')!r}")
    if not isinstance(identity.get("traits"), dict):
        raise bad_request("traits must be a JSON object")
    if not isinstance(identity.get("schema_id"), str) or not identity["schema_id"]:
        raise bad_request("schema_id must be a non-empty string")


def _store(state: StandinState, before: dict[str, Any], after: dict[str, Any]) -> None:
    now = rfc3339(state.now())
    if after["state"] != before["state"]:
        after["state_changed_at"] = now
    after["updated_at"] = now
    state.identities[before["id"]] = after
    state.resync_identifiers(before["id"])


async def put_identity(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    identity_id = request.match_info["id"]
    before = _identity_or_404(state, identity_id)
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    missing = [k for k in ("schema_id", "traits", "state") if k not in body]
    if missing:
        raise bad_request(f"missing properties: {', '.join(missing)}")
    after = {
        **before,
        "schema_id": body["schema_id"],
        "traits": body["traits"],
        "state": body["state"],
        "metadata_public": body.get("metadata_public"),
        "metadata_admin": body.get("metadata_admin"),
    }
    after.pop("external_id", None)
    if isinstance(body.get("external_id"), str) and body["external_id"]:
        after["external_id"] = body["external_id"]
    _check_identity(after)
    _store(state, before, after)
    new_password = (
        ((body.get("credentials") or {}).get("password") or {}).get("config") or {}
    ).get("password")
    if isinstance(new_password, str) and identity_id in state.passwords:
        state.passwords[identity_id].password = new_password
        state.passwords[identity_id].updated_at = state.now()
    return json_response(_render(state, identity_id))


async def patch_identity(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    identity_id = request.match_info["id"]
    before = _identity_or_404(state, identity_id)
    patch = await _json_body(request)
    try:
        patched = apply_patch(before, patch, denied=DENIED_PATCH_PATHS)
    except PatchError as exc:
        raise bad_request(str(exc)) from exc
    if not isinstance(patched, dict):
        raise bad_request("The patched identity must be a JSON object.")
    after = {k: v for k, v in patched.items() if k in _IDENTITY_FIELDS}
    after["id"] = identity_id
    _check_identity(after)
    _store(state, before, after)
    return json_response(_render(state, identity_id))


async def delete_identity(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    identity_id = request.match_info["id"]
    _identity_or_404(state, identity_id)
    state.delete_identity(identity_id)
    return web.Response(status=204)


async def identity_sessions(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    identity_id = request.match_info["id"]
    identity = _identity_or_404(state, identity_id)
    sessions = [
        bodies.session(s, identity) for s in state.sessions.values() if s.identity_id == identity_id
    ]
    return json_response(sessions)


async def health(_: web.Request) -> web.StreamResponse:
    return json_response(bodies.health_ok())


def create_admin_app(state: StandinState) -> web.Application:
    app = web.Application(middlewares=[record_calls, render_errors])
    app[STATE_KEY] = state
    app[APP_NAME_KEY] = "admin"
    router = app.router
    for prefix in ("", "/admin"):
        router.add_get(f"{prefix}/health/alive", health, allow_head=False)
        router.add_get(f"{prefix}/health/ready", health, allow_head=False)
    router.add_get("/admin/identities", list_identities, allow_head=False)
    router.add_get("/admin/identities/{id}", get_identity, allow_head=False)
    router.add_put("/admin/identities/{id}", put_identity)
    router.add_patch("/admin/identities/{id}", patch_identity)
    router.add_delete("/admin/identities/{id}", delete_identity)
    router.add_get("/admin/identities/{id}/sessions", identity_sessions, allow_head=False)
    return app


__all__ = ["KratosError", "create_admin_app"]
