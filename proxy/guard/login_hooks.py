"""The public routes the guard hooks: login submissions and flow fetches (``kernel.hooked``).

A submission is read whole (bounded), judged, and only then forwarded — the same bytes.
Kratos' answer is read (bounded) to learn the outcome and then passed on unchanged: status,
every header, every ``Set-Cookie``, the body bytes. Anything that is not an attempt (no secret,
a body type Kratos refuses unread, a link) passes through; a submission that cannot be judged
(JSON that does not parse, a login field sent twice with different values) is refused here
(400, Kratos' error shape), never forwarded unjudged.
"""

from __future__ import annotations

import logging

import orjson

from proxy.guard.classify import (
    GUARDED_TYPES,
    JSON,
    Submission,
    answers_json,
    classify,
    parse_submission,
    query_fields,
)
from proxy.guard.core import Guard
from proxy.guard.flows import (
    as_flow,
    decoded,
    document,
    lockout_message,
    seconds,
    with_message,
)
from proxy.guard.guard_metrics import RATE_LIMITED
from proxy.guard.naming import HashedSubject
from proxy.guard.policy import Outcome, Verdict
from proxy.guard.respond import Block, blocked, refuse
from proxy.guard.store import FlowHold
from proxy.kernel.errors import BadRequest, BodyTooLarge, DependencyUnavailable
from proxy.kernel.hooked import Hook, Hooked, Reply
from proxy.kernel.mediatype import media_type

log = logging.getLogger("kratos_hooks.guard")

# What the flow view drops from Kratos' headers when it writes the flow anew.
_REWRITTEN = ("Content-Length", "Content-Encoding", "ETag")


def json_caller(request: Hooked) -> bool:
    headers = request.headers
    return answers_json(headers.get("Content-Type"), headers.get("Accept"), "Cookie" in headers)


async def answer_block(
    request: Hooked, guard: Guard, kind: str, flow_id: str, verdict: Verdict, json_mode: bool
) -> Reply:
    """Remember the refused flow (so its UI shows why), fetch it for a JSON caller, and
    answer as ``respond.blocked`` chooses."""
    rate = verdict.bucket == "rate"
    if rate:
        RATE_LIMITED.labels(kind).inc()
    block = Block(kind, flow_id, seconds(verdict.retry_after), rate, json_mode)
    flow = None
    if flow_id:
        await guard.remember_flow(flow_id, FlowHold(guard.clock() + block.wait, rate=rate))
        if json_mode:
            answer = await request.fetch(f"/self-service/{kind}/flows?id={flow_id}")
            if answer is None:
                log.warning("flow unavailable for a lockout answer")
            elif answer.status == 200:
                flow = as_flow(document(answer))
    ui_url = guard.ui.get(kind)
    if ui_url is None and flow_id and not json_mode and kind == "login":
        # Not configured and not seen yet on this replica: Kratos says where its login UI is
        # when asked for a new browser flow (that flow is left to expire). The other flows'
        # UIs are learned from Kratos' own redirects (a 429 page until then, as documented).
        init = await request.fetch(f"/self-service/{kind}/browser", accept="text/html")
        if init is not None and init.status in (302, 303):
            ui_url = guard.ui.learn_from_init(kind, init.headers.get("Location"))
    return blocked(block, guard.config, flow=flow, ui_url=ui_url, drop_ids=guard.failure_ids)


def _subject(guard: Guard, request: Hooked, sub: Submission, address: str) -> HashedSubject | None:
    """Whom the attempt is about, or None when it carries no secret the guard judges."""
    secrets = sub.secrets.intersection(guard.config.methods)
    if not secrets:
        return None
    names = guard.names
    if sub.identifier:
        return names.subject(sub.identifier, address)
    if secrets == {"password"}:
        # Kratos refuses a password without an identifier unchecked; judged by address alone
        # all the same, in case its decoder found an identifier this one did not.
        return names.subject(None, address)
    # Second factors carry no identifier: the session they step up, else the flow.
    token = request.headers.get("X-Session-Token") or request.cookie(
        guard.settings.kratos.session_cookie
    )
    if token:
        return names.subject(token, address, kind="session")
    return names.subject(request.view.flow_id(), address, kind="flow")


def _submission(request: Hooked, raw: bytes | None, query: dict[str, str]) -> Submission:
    content_type = None if raw is None else request.headers.get("Content-Type")
    submission = parse_submission(content_type, raw or b"", query)
    if submission is None:
        # Never forwarded unjudged: a body this parser refuses but Kratos accepts (deeper
        # nesting, invalid UTF-8, a field sent twice) would be a password check unguarded.
        raise BadRequest(
            "The request body is not a valid JSON object"
            if media_type(content_type) == JSON
            else "The submission sends a login field twice with different values"
        )
    return submission


def login_submit(guard: Guard) -> Hook:
    """POST (and GET) /self-service/login?flow=… in any spelling Kratos routes there."""
    cookie_name = guard.settings.kratos.session_cookie

    async def hook(request: Hooked) -> Reply:
        json_mode = json_caller(request)
        flow_id = request.view.flow_id()
        address = guard.names.address(request.client_ip)
        rate = guard.rate_window("login", address, guard.config.rate_login)
        # Kratos' decoder reads a GET submission from the query alone, and the query beside
        # the body for some methods: a secret there is judged like one in the body.
        query = query_fields(request.view.param)
        bodyless = request.method == "GET"
        content_type = request.headers.get("Content-Type")
        try:
            if bodyless and not query:
                return Reply.relay(await request.forward(None))  # a link, not a submission
            if not bodyless and media_type(content_type) not in GUARDED_TYPES:
                if content_type and "," in content_type:
                    # Older Kratos releases read a list ("text/plain, application/json") as JSON.
                    raise BadRequest("The Content-Type header must name exactly one media type")
                if rate is not None and not (verdict := await guard.hit(rate)).allowed:
                    return await answer_block(request, guard, "login", flow_id, verdict, json_mode)
                return Reply.relay(await request.forward(None))  # Kratos refuses it unread
            limit = guard.config.max_body
            raw = None if bodyless else await request.read(limit, "The login submission")
            subject = _subject(guard, request, _submission(request, raw, query), address)
            if subject is None:
                if not bodyless and rate is not None:
                    if not (verdict := await guard.hit(rate)).allowed:
                        return await answer_block(
                            request, guard, "login", flow_id, verdict, json_mode
                        )
                return Reply.relay(await request.forward(raw))
            verdict, attempt = await guard.begin(subject, rate=rate)
        except (BadRequest, BodyTooLarge, DependencyUnavailable) as exc:
            return refuse(exc, json_mode=json_mode)
        if not verdict.allowed:
            return await answer_block(request, guard, "login", flow_id, verdict, json_mode)
        try:
            answer = await request.forward(raw)
        except BaseException:
            # Released in the background: no await between catching and re-raising, which
            # mypyc's compiled coroutines (``proxy.native``) do not carry through safely.
            guard.finish_soon(attempt, Outcome.NOT_COUNTED)
            raise
        headers = answer.headers
        location = headers.get("Location")
        outcome = classify(
            answer.status,
            set_cookies=headers.getall("Set-Cookie", ()),
            location=location,
            body=decoded(answer.body, headers.get("Content-Encoding")) if answer.complete else None,
            flow_id=flow_id,
            session_cookie=cookie_name,
            failure_ids=guard.failure_ids,
        )
        if outcome is Outcome.FAILURE:
            guard.ui.learn("login", location, flow_id)
        # Settled once the answer is on its way, off this connection's critical path.
        guard.finish_soon(attempt, outcome)
        return Reply.relay(answer)

    return hook


def flow_view(guard: Guard, kind: str) -> Hook:
    """GET /self-service/<kind>/flows?id=…: a flow whose submission the guard refused shows
    why — the backoff's lockout or a rate window's limit — for the wait's length."""

    async def hook(request: Hooked) -> Reply:
        flow_id = request.view.flow_id("id")
        hold = await guard.flow_lockout(flow_id) if flow_id else None
        answer = await request.forward(None)
        flow = as_flow(document(answer)) if hold is not None and answer.status == 200 else None
        if hold is None or flow is None:
            return Reply.relay(answer)
        wait = seconds(hold.until - guard.clock())
        message = lockout_message(guard.config.message_id, wait, rate=hold.rate)
        headers = answer.headers.copy()
        for name in _REWRITTEN:
            headers.popall(name, None)
        body = orjson.dumps(with_message(flow, message, drop_ids=guard.failure_ids))
        return Reply.own(200, body, headers.items())

    return hook
