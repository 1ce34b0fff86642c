"""The public routes the guard intercepts: login submissions and flow fetches.

A submission is read whole (bounded), judged, and only then forwarded — the same bytes,
through the foundation's forwarder. Kratos' answer is read (bounded) to learn the outcome
and then sent on unchanged: status, every header, every ``Set-Cookie``, the body bytes.
Anything that is not an attempt (other methods, other body types, GETs) passes through; a body
that cannot be judged (JSON that does not parse, a form sending a login field twice with
different values) is refused here (400, Kratos' error shape), never forwarded unjudged.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
from aiohttp import ClientResponse, web
from aiohttp.typedefs import Handler

from proxy.edge.headers import downstream_response_headers
from proxy.guard.classify import (
    GUARDED_TYPES,
    JSON,
    Submission,
    answers_json,
    classify,
    decoded,
    parse_submission,
    query_fields,
)
from proxy.guard.core import Guard, Subject
from proxy.guard.guard_keys import GUARD
from proxy.guard.guard_metrics import RATE_LIMITED
from proxy.guard.policy import Outcome, Verdict
from proxy.guard.respond import blocked, lockout_message, refuse, seconds, with_message
from proxy.kernel.bodies import read_bounded
from proxy.kernel.errors import BadRequest, BodyTooLarge, DependencyUnavailable
from proxy.kernel.http_metrics import UPSTREAM_ERRORS
from proxy.kernel.kernel_keys import FORWARDER, REQUEST_ID, ROUTE, SETTINGS, VIEW
from proxy.kernel.mediatype import media_type

log = logging.getLogger("kratos_hooks.guard")

# Kratos' login answers are a flow or a session: small. A larger body is relayed unread.
MAX_ANSWER = 1024 * 1024


async def read_answer(upstream: ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the answer, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await upstream.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


async def send(
    request: web.Request, upstream: ClientResponse, head: bytes, complete: bool
) -> web.StreamResponse:
    """Kratos' answer as it came: the bytes already read, then whatever is left."""
    response = web.StreamResponse(
        status=upstream.status,
        reason=upstream.reason,
        headers=downstream_response_headers(upstream.headers),
    )
    response.headers.setdefault("X-Request-ID", request[REQUEST_ID])
    await response.prepare(request)
    await response.write(head)
    if not complete:
        try:
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError, ConnectionResetError):
            UPSTREAM_ERRORS.labels("reset").inc()
            if request.transport is not None:
                request.transport.abort()  # a truncated body must never look complete
            return response
    await response.write_eof()
    return response


def _subject(guard: Guard, request: web.Request, sub: Submission, ip: str) -> Subject | None:
    """Whom the attempt is about, or None when it carries no secret the guard judges."""
    secrets = sub.secrets.intersection(guard.config.methods)
    if not secrets:
        return None
    if sub.identifier:
        return guard.subject(sub.identifier, ip)
    if secrets == {"password"}:
        # Kratos refuses a password without an identifier unchecked; judged by address alone
        # all the same, in case its decoder found an identifier this one did not.
        return guard.subject(None, ip)
    # Second factors carry no identifier: the session they step up, else the flow.
    cookie = request.cookies.get(request.app[SETTINGS].kratos.session_cookie)
    token = request.headers.get("X-Session-Token") or cookie
    if token:
        return guard.subject(token, ip, kind="session")
    return guard.subject(request[VIEW].flow_id(), ip, kind="flow")


async def _forward(request: web.Request, raw: bytes | None) -> web.StreamResponse:
    forwarder = request.app[FORWARDER]
    async with forwarder.exchange(request, body=raw) as upstream:
        return await forwarder.relay(request, upstream)


async def login_submit(request: web.Request) -> web.StreamResponse:
    """POST (and GET) /self-service/login?flow=… in any spelling Kratos routes there."""
    request[ROUTE] = "login"
    guard = request.app[GUARD]
    forwarder = request.app[FORWARDER]
    view = request[VIEW]
    content_type = request.headers.get("Content-Type")
    as_json = answers_json(content_type, request.headers.get("Accept"), "Cookie" in request.headers)
    flow_id = view.flow_id()
    ip = forwarder.identify(request)[0]
    rate = guard.rate_window("login", ip, guard.config.rate_login)
    # Kratos' decoder reads a GET submission from the query alone, and the query beside the
    # body for some methods: a secret there is judged like one in the body.
    query = query_fields(view.param)
    bodyless = request.method == "GET"
    try:
        if bodyless and not query:
            return await forwarder.handle(request)  # a link, not a submission
        if not bodyless and media_type(content_type) not in GUARDED_TYPES:
            if content_type and "," in content_type:
                # Older Kratos releases read a list ("text/plain, application/json") as JSON.
                raise BadRequest("The Content-Type header must name exactly one media type")
            if rate is not None and not (verdict := await guard.hit(rate)).allowed:
                return await _blocked(request, guard, flow_id, as_json, verdict)
            return await forwarder.handle(request)  # Kratos refuses such bodies unread
        limit = guard.config.max_body
        raw = None if bodyless else await read_bounded(request, limit, "The login submission")
        submission = parse_submission(None if bodyless else content_type, raw or b"", query)
        if submission is None:
            # Never forwarded unjudged: a body this parser refuses but Kratos accepts (deeper
            # nesting, invalid UTF-8, a field sent twice) would be a password check unguarded.
            raise BadRequest(
                "The request body is not a valid JSON object"
                if media_type(content_type) == JSON
                else "The submission sends a login field twice with different values"
            )
        subject = _subject(guard, request, submission, ip)
        if subject is None:
            if bodyless:
                return await _forward(request, None)
            if rate is not None and not (verdict := await guard.hit(rate)).allowed:
                return await _blocked(request, guard, flow_id, as_json, verdict)
            return await _forward(request, raw)
        verdict, attempt = await guard.begin(subject, rate=rate)
    except (BadRequest, BodyTooLarge, DependencyUnavailable) as exc:
        return refuse(exc, json_mode=as_json)
    if not verdict.allowed:
        return await _blocked(request, guard, flow_id, as_json, verdict)
    try:
        async with forwarder.exchange(request, body=raw) as upstream:
            head, complete = await read_answer(upstream, MAX_ANSWER)
            location = upstream.headers.get("Location")
            outcome = classify(
                upstream.status,
                set_cookies=upstream.headers.getall("Set-Cookie", ()),
                location=location,
                body=decoded(head, upstream.headers.get("Content-Encoding")) if complete else None,
                flow_id=flow_id,
                session_cookie=request.app[SETTINGS].kratos.session_cookie,
                failure_ids=guard.failure_ids,
            )
            if outcome is Outcome.FAILURE:
                guard.learn_ui("login", location, flow_id)
            try:
                return await send(request, upstream, head, complete)
            finally:
                # After the answer is on its way, and off this connection's critical path.
                guard.finish_soon(attempt, outcome)
    finally:
        await guard.finish(attempt, Outcome.NOT_COUNTED)  # a no-op once settled


async def _blocked(
    request: web.Request, guard: Guard, flow_id: str, as_json: bool, verdict: Verdict
) -> web.StreamResponse:
    if verdict.bucket == "rate":
        RATE_LIMITED.labels("login").inc()
    return await blocked(
        request,
        guard,
        kind="login",
        flow_id=flow_id,
        json_mode=as_json,
        retry_after=verdict.retry_after,
        rate=verdict.bucket == "rate",
    )


def flow_view(kind: str) -> Handler:
    """GET /self-service/<kind>/flows?id=…: a flow whose submission the guard refused shows
    why — the backoff's lockout or a rate window's limit — for the wait's length."""

    async def handler(request: web.Request) -> web.StreamResponse:
        guard = request.app[GUARD]
        forwarder = request.app[FORWARDER]
        flow_id = request[VIEW].flow_id("id")
        hold = await guard.flow_lockout(flow_id) if flow_id else None
        if hold is None:
            return await forwarder.handle(request)
        async with forwarder.exchange(request) as upstream:
            head, complete = await read_answer(upstream, MAX_ANSWER)
            body = decoded(head, upstream.headers.get("Content-Encoding")) if complete else None
            flow = _flow(body) if upstream.status == 200 else None
            if flow is None:
                return await send(request, upstream, head, complete)
            wait = seconds(hold.until - guard.clock())
            message = lockout_message(guard.config.message_id, wait, rate=hold.rate)
            headers = downstream_response_headers(upstream.headers)
            for name in ("Content-Length", "Content-Encoding", "ETag"):
                headers.popall(name, None)
            headers.setdefault("X-Request-ID", request[REQUEST_ID])
            return web.Response(
                status=200,
                body=orjson.dumps(with_message(flow, message, drop_ids=guard.failure_ids)),
                headers=headers,
            )

    return handler


def _flow(body: bytes | None) -> dict[str, Any] | None:
    if not body:
        return None
    try:
        flow = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return flow if isinstance(flow, dict) and isinstance(flow.get("ui"), dict) else None
