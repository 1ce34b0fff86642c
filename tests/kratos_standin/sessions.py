"""GET/POST/… /sessions/whoami and the three logout endpoints."""

from __future__ import annotations

import orjson
from aiohttp import web

from . import bodies
from .browser import (
    forward_error,
    get_state,
    see_other,
    session_from_cookie,
    with_query,
)
from .cookies import clear_cookie
from .errors import (
    AALNotSatisfiedError,
    KratosError,
    bad_request,
    json_response,
    no_active_session,
    no_session_whoami,
)
from .negotiation import is_json_request
from .state import SessionRecord, StandinState


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _whoami_session(request: web.Request, state: StandinState) -> SessionRecord | None:
    # An X-Session-Token is final even when invalid; a cookie that does not decode
    # (here: matches no session) falls through to the Bearer token, as in Kratos.
    token = request.headers.get("X-Session-Token", "")
    if token:
        return state.session_by_token(token)
    cookie = request.cookies.get(state.session_cookie_name)
    session = state.session_by_cookie(cookie) if cookie else None
    if session is not None:
        return session
    bearer = _bearer(request)
    return state.session_by_token(bearer) if bearer else None


async def whoami(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    session = _whoami_session(request, state)
    if session is None or not state.is_usable(session):
        raise no_session_whoami()
    if state.require_aal2 and session.aal == "aal1":
        redirect = with_query(f"{state.base_url}/self-service/login/browser", aal="aal2")
        if return_to := request.query.get("return_to"):
            redirect = with_query(redirect, return_to=return_to)
        raise AALNotSatisfiedError(redirect)
    body = bodies.session(session, state.identities[session.identity_id])
    return json_response(body, headers={"X-Kratos-Authenticated-Identity-Id": session.identity_id})


async def logout_api(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"Unable to decode JSON payload: {exc}") from exc
    token = payload.get("session_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise bad_request('I[#] S[#/required] missing properties: "session_token"')
    session = state.session_by_token(token)
    if session is None or not session.active:
        raise KratosError(
            403,
            reason=(
                "The provided Ory Session Token could not be found, is invalid, "
                "or otherwise malformed."
            ),
        )
    state.revoke_session(session)
    return web.Response(status=204)


async def logout_browser(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    session = session_from_cookie(request, state)
    if session is None:
        raise no_active_session()
    params = {"token": session.logout_token}
    if return_to := request.query.get("return_to"):
        params["return_to"] = return_to
    url = with_query(f"{state.base_url}/self-service/logout", **params)
    return json_response({"logout_url": url, "logout_token": session.logout_token})


async def logout(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    expected = request.query.get("token", "")
    if not expected:
        return forward_error(request, bad_request("Please include a token in the URL query."))
    cookies: list[str] = []
    session = session_from_cookie(request, state)
    if session is not None:
        if session.logout_token != expected:
            return forward_error(
                request,
                KratosError(
                    403,
                    reason=(
                        "Unable to log out because the logout token in the URL query does "
                        "not match the session cookie."
                    ),
                ),
            )
        state.revoke_session(session)
        cookies.append(clear_cookie(state.session_cookie_name))
    # Without a session there is nothing to revoke; Kratos just finishes the logout.
    if is_json_request(request):
        response = web.Response(status=204)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie)
        return response
    return see_other(request.query.get("return_to") or state.default_return_to, cookies)
