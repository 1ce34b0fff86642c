"""Request-level helpers the login, session and logout handlers share."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web
from yarl import URL

from . import csrf
from .cookies import set_cookie
from .errors import KratosError
from .keys import STATE_KEY
from .negotiation import client_ip, is_json_request, request_url
from .state import FlowStage, FlowType, LoginFlow, SessionRecord, StandinState
from .timefmt import rfc3339

# Cloudflare sets these on every request; Kratos ignores them when spotting browsers.
_IGNORED_COOKIE_PREFIXES = ("__cf", "_cf", "cf_")


def get_state(request: web.Request) -> StandinState:
    return request.app[STATE_KEY]


def with_query(url: str, **params: str) -> str:
    return str(URL(url).update_query(params))


def ui_url(state: StandinState, flow_id: str) -> str:
    return with_query(state.login_ui_url, flow=flow_id)


def see_other(location: str, cookies: list[str] | None = None) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    for cookie in cookies or []:
        response.headers.add("Set-Cookie", cookie)
    return response


def csrf_from_cookie(request: web.Request, state: StandinState) -> bytes | None:
    return csrf.decode_cookie(request.cookies.get(state.csrf_cookie_name))


def csrf_cookie(state: StandinState, token: bytes) -> str:
    return set_cookie(
        state.csrf_cookie_name, csrf.encode_cookie(token), max_age=csrf.COOKIE_MAX_AGE
    )


def ensure_csrf(request: web.Request, state: StandinState) -> tuple[bytes, list[str]]:
    """The request's CSRF token, and the cookie to set when it had none (nosurf only mints
    a cookie when the request lacks a valid one)."""
    real = csrf_from_cookie(request, state)
    if real is not None:
        return real, []
    real = csrf.new_token()
    return real, [csrf_cookie(state, real)]


def session_cookie(state: StandinState, session: SessionRecord) -> str:
    lifespan = int(state.session_lifespan.total_seconds())
    return set_cookie(
        state.session_cookie_name,
        session.cookie_value,
        expires=state.now() + state.session_lifespan,
        max_age=lifespan,
    )


def has_browser_cookies(request: web.Request) -> bool:
    return any(not name.startswith(_IGNORED_COOKIE_PREFIXES) for name in request.cookies)


def session_from_cookie(request: web.Request, state: StandinState) -> SessionRecord | None:
    value = request.cookies.get(state.session_cookie_name)
    session = state.session_by_cookie(value) if value else None
    return session if session is not None and state.is_usable(session) else None


def session_from_token(request: web.Request, state: StandinState) -> SessionRecord | None:
    token = request.headers.get("X-Session-Token", "")
    session = state.session_by_token(token) if token else None
    return session if session is not None and state.is_usable(session) else None


def device_of(request: web.Request) -> dict[str, str]:
    device = {"ip_address": client_ip(request)}
    if agent := request.headers.get("User-Agent"):
        device["user_agent"] = agent
    return device


def new_flow(
    request: web.Request,
    state: StandinState,
    flow_type: FlowType,
    *,
    stage: FlowStage,
    csrf_real: bytes | None,
    return_to: str | None = None,
    refresh: bool = False,
    requested_aal: str = "aal1",
    url: str | None = None,
) -> LoginFlow:
    now = state.now()
    flow = LoginFlow(
        id=str(uuid.uuid4()),
        type=flow_type,
        stage=stage,
        issued_at=now,
        expires_at=now + state.flow_lifespan,
        request_url=url or request_url(request),
        csrf_token=csrf.mask(csrf_real) if flow_type == "browser" and csrf_real else "",
        return_to=return_to,
        refresh=refresh,
        requested_aal=requested_aal,
    )
    state.flows[flow.id] = flow
    return flow


def first_stage(state: StandinState, requested_aal: str) -> FlowStage:
    if requested_aal != "aal1":
        return "totp"
    return "identifier" if state.login_style == "identifier_first" else "password"


def store_flow_error(state: StandinState, error: KratosError) -> str:
    error_id = str(uuid.uuid4())
    now = rfc3339(state.now())
    state.flow_errors[error_id] = {
        "id": error_id,
        "error": error.error_object(None),
        "created_at": now,
        "updated_at": now,
    }
    return error_id


def forward_error(request: web.Request, error: KratosError, *, api: bool = False) -> web.Response:
    """Kratos' error manager: JSON clients get the error, browsers go to the error UI."""
    if api or is_json_request(request):
        raise error
    state = get_state(request)
    return see_other(with_query(state.error_ui_url, id=store_flow_error(state, error)))


def parse_transient_payload(value: Any) -> dict[str, Any] | None:
    # Form posts carry the payload as a JSON string.
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None
