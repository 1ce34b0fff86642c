"""Plain per-IP windows on the other self-service submissions (registration, recovery,
verification), on top of which login has its own raw rate inside the backoff check.

A refused submission never reaches Kratos and is answered like a login lockout: JSON callers
get their flow back with the message (or Kratos' error shape, 429), browsers a 303 to the
flow's UI, whose flow then shows the message (``handler.flow_view``) — or a 429 page while
that UI is unknown. The body is not read: an allowed submission streams through untouched,
and Kratos' redirect back to the same flow teaches the guard the UI's address.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.guard.classify import answers_json
from proxy.guard.guard_keys import GUARD
from proxy.guard.guard_metrics import RATE_LIMITED
from proxy.guard.respond import blocked, refuse
from proxy.kernel.errors import DependencyUnavailable
from proxy.kernel.kernel_keys import FORWARDER, ROUTE


def limited(flow: str, limit: int) -> Handler:
    """The handler for ``POST /self-service/<flow>``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        request[ROUTE] = flow
        guard = request.app[GUARD]
        forwarder = request.app[FORWARDER]
        flow_id = forwarder.view(request).flow_id()
        ip = forwarder.identify(request)[0]
        rate = guard.rate_window(flow, ip, limit)
        as_json = answers_json(
            request.headers.get("Content-Type"),
            request.headers.get("Accept"),
            "Cookie" in request.headers,
        )
        if rate is not None:
            try:
                verdict = await guard.hit(rate)
            except DependencyUnavailable as exc:
                return refuse(exc, json_mode=as_json)
            if not verdict.allowed:
                RATE_LIMITED.labels(flow).inc()
                return await blocked(
                    request,
                    guard,
                    kind=flow,
                    flow_id=flow_id,
                    json_mode=as_json,
                    retry_after=verdict.retry_after,
                    rate=True,
                )
        async with forwarder.exchange(request) as upstream:
            guard.learn_ui(flow, upstream.headers.get("Location"), flow_id)
            return await forwarder.relay(request, upstream)

    return handler
