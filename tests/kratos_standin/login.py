"""Creating and fetching login flows (GET /self-service/login/{browser,api,flows})."""

from __future__ import annotations

from aiohttp import web

from . import bodies, csrf, gostd
from .browser import (
    csrf_from_cookie,
    ensure_csrf,
    first_stage,
    forward_error,
    get_state,
    new_flow,
    see_other,
    session_from_cookie,
    session_from_token,
    ui_url,
    with_query,
)
from .errors import KratosError, csrf_violation, error_response, json_response, not_found
from .negotiation import accepts_json
from .state import SessionRecord


def already_logged_in() -> KratosError:
    return KratosError(
        400,
        id="session_already_available",
        reason=(
            "A valid session was detected and thus login is not possible. "
            "Did you forget to set `?refresh=true`?"
        ),
        message="you are already logged in",
    )


def aal1_required() -> KratosError:
    return KratosError(
        401,
        id="session_aal1_required",
        reason="You can not requested a higher AAL (AAL2/AAL3) without an active session.",
    )


def aal_already_fulfilled() -> KratosError:
    return KratosError(
        400,
        id="session_aal_already_fulfilled",
        reason="The session has already the requested authenticator assurance level.",
        message="session has the requested authenticator assurance level already",
    )


def _session_conflict(session: SessionRecord | None, refresh: bool, aal: str) -> KratosError | None:
    """Why Kratos refuses to start a flow for this (maybe absent) session, if it does."""
    if aal != "aal1":
        if session is None:
            return aal1_required()
        if session.aal == aal and not refresh:
            return aal_already_fulfilled()
        return None
    if session is not None and not refresh:
        return already_logged_in()
    return None


async def init_browser(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    query = request.query
    refresh = query.get("refresh") == "true"
    aal = query.get("aal") or "aal1"
    return_to = query.get("return_to") or None
    json_mode = accepts_json(request)

    conflict = _session_conflict(session_from_cookie(request, state), refresh, aal)
    if conflict is not None:
        if conflict.id in {"session_already_available", "session_aal_already_fulfilled"}:
            if json_mode:
                raise conflict
            return see_other(return_to or state.default_return_to)
        return forward_error(request, conflict)

    real, cookies = ensure_csrf(request, state)
    flow = new_flow(
        request,
        state,
        "browser",
        stage=first_stage(state, aal),
        csrf_real=real,
        return_to=return_to,
        refresh=refresh,
        requested_aal=aal,
    )
    if json_mode:
        response = json_response(bodies.login_flow(flow, state))
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie)
        return response
    return see_other(ui_url(state, flow.id), cookies)


async def init_api(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    query = request.query
    refresh = query.get("refresh") == "true"
    aal = query.get("aal") or "aal1"
    conflict = _session_conflict(session_from_token(request, state), refresh, aal)
    if conflict is not None:
        raise conflict
    flow = new_flow(
        request,
        state,
        "api",
        stage=first_stage(state, aal),
        csrf_real=None,
        return_to=query.get("return_to") or None,
        refresh=refresh,
        requested_aal=aal,
    )
    return json_response(bodies.login_flow(flow, state))


async def get_flow(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    flow = state.flows.get(gostd.flow_param(request.query_string, "id"))
    if flow is None:
        raise not_found()
    if flow.type == "browser" and not csrf.verify(
        csrf_from_cookie(request, state), flow.csrf_token
    ):
        raise csrf_violation()
    if flow.expires_at < state.now():
        if flow.type == "browser":
            redirect = f"{state.base_url}/self-service/login/browser"
            if flow.return_to:
                redirect = with_query(redirect, return_to=flow.return_to)
            details = {"redirect_to": redirect, "return_to": flow.return_to or ""}
            reason = (
                "The login flow has expired. Redirect the user to the login flow init "
                "endpoint to initialize a new login flow."
            )
        else:
            details = {"api": f"{state.base_url}/self-service/login/api"}
            reason = (
                "The login flow has expired. Call the login flow init API endpoint to "
                "initialize a new login flow."
            )
        raise KratosError(410, id="self_service_flow_expired", reason=reason, details=details)
    return json_response(bodies.login_flow(flow, state))


async def get_error(request: web.Request) -> web.StreamResponse:
    """GET /self-service/errors?id=…: what the error UI fetches after a redirect."""
    state = get_state(request)
    stored = state.flow_errors.get(request.query.get("id", ""))
    if stored is None:
        return error_response(request, not_found())
    return json_response(stored)
