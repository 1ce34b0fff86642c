"""Registration, recovery and verification flows: created, fetched, and the e-mail step.

Modelled on the login flow's documented behaviour (KRATOS.md), which Kratos shares across
its self-service flows *(inferred)*: ``…/browser`` answers a plain browser with a 303 to the
flow kind's ``ui_url`` ``?flow=<id>`` and sets the CSRF cookie, JSON callers get the flow;
``…/api`` gives the flow; ``…/flows?id=`` gives it back (404 unknown, 403 without the CSRF
cookie of a browser flow, 410 expired). Of the submissions only the recovery / verification
``code`` method's first step is modelled: the address is "sent" a code whether it exists or
not, and the flow shows that (JSON: 200 with the flow; plain browser: 303 back to the UI
with the same flow). Registration submissions are not modelled (404, as before).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler

from . import bodies, csrf, gostd
from .browser import csrf_from_cookie, ensure_csrf, forward_error, get_state, see_other, with_query
from .errors import KratosError, csrf_violation, json_response, not_found
from .login_submit import read_body
from .negotiation import accepts_json, is_json_request, request_url
from .state import FlowKind, FlowType, SelfServiceFlow, StandinState

KINDS: tuple[FlowKind, ...] = ("registration", "recovery", "verification")


def _new_flow(
    request: web.Request, state: StandinState, kind: FlowKind, flow_type: FlowType, real: bytes
) -> SelfServiceFlow:
    now = state.now()
    flow = SelfServiceFlow(
        kind=kind,
        id=str(uuid.uuid4()),
        type=flow_type,
        issued_at=now,
        expires_at=now + state.flow_lifespan,
        request_url=request_url(request),
        csrf_token=csrf.mask(real) if flow_type == "browser" else "",
        return_to=request.query.get("return_to") or None,
    )
    state.other_flows[flow.id] = flow
    return flow


def _show(state: StandinState, flow: SelfServiceFlow, status: int = 200) -> web.Response:
    return json_response(bodies.self_service_flow(flow, state), status)


def _init_browser(kind: FlowKind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        state = get_state(request)
        real, cookies = ensure_csrf(request, state)
        flow = _new_flow(request, state, kind, "browser", real)
        if not accepts_json(request):
            return see_other(with_query(state.ui_url_of(kind), flow=flow.id), cookies)
        response = _show(state, flow)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie)
        return response

    return handler


def _init_api(kind: FlowKind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        state = get_state(request)
        return _show(state, _new_flow(request, state, kind, "api", b""))

    return handler


def _flow_of(
    request: web.Request, kind: FlowKind, flow_id: str, csrf_token: str | None = None
) -> SelfServiceFlow:
    """The flow, checked: a browser flow needs its CSRF cookie to match ``csrf_token`` (a
    submission's field), or the flow's own token when fetched."""
    state = get_state(request)
    flow = state.other_flows.get(flow_id)
    if flow is None or flow.kind != kind:
        raise not_found()
    sent = flow.csrf_token if csrf_token is None else csrf_token
    if flow.type == "browser" and not csrf.verify(csrf_from_cookie(request, state), sent):
        raise csrf_violation()
    if flow.expires_at < state.now():
        raise KratosError(
            410,
            id="self_service_flow_expired",
            reason=f"The {kind} flow has expired. Initialize a new one.",
            message="self-service flow expired",
        )
    return flow


def _get_flow(kind: FlowKind) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        flow = _flow_of(request, kind, gostd.flow_param(request.query_string, "id"))
        return _show(get_state(request), flow)

    return handler


def _submit_code(kind: FlowKind) -> Handler:
    """POST /self-service/{recovery,verification}?flow=…: the e-mail step of ``code``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = get_state(request)
        try:
            fields = await read_body(request)
            token = fields.get("csrf_token")
            flow_id = gostd.flow_param(request.query_string, "flow")
            flow = _flow_of(request, kind, flow_id, token if isinstance(token, str) else "")
        except KratosError as error:
            return forward_error(request, error)
        email = fields.get("email")
        if isinstance(email, str) and email.strip():
            flow.state = "sent_email"
            flow.messages, flow.node_messages = [bodies.code_sent(kind)], {}
            status = 200
        else:
            flow.node_messages = {"email": [bodies.missing_property("email")]}
            status = 400
        if flow.type == "browser" and not is_json_request(request):
            return see_other(with_query(state.ui_url_of(kind), flow=flow.id))
        return _show(state, flow, status)

    return handler


def routes() -> Iterator[tuple[str, str, Handler]]:
    """(method, path, handler) of the registration, recovery and verification flows."""
    for kind in KINDS:
        base = f"/self-service/{kind}"
        yield "GET", f"{base}/browser", _init_browser(kind)
        yield "GET", f"{base}/api", _init_api(kind)
        yield "GET", f"{base}/flows", _get_flow(kind)
        if kind != "registration":
            yield "POST", base, _submit_code(kind)
            yield "GET", base, _submit_code(kind)
