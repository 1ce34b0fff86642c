"""The answers a blocked caller gets, in the form its Kratos UI already renders.

Stock Kratos UIs and the Ory SDKs treat a 400 carrying the flow as "show the flow's
messages" and anything else as a generic failure, so a blocked JSON caller gets its own flow
back (fetched from Kratos with its cookies) with a lockout message added — exactly how a
rejected password looks, minus the previous attempt's rejection (``with_message``). A plain
browser is sent back to its flow's UI (login, registration, recovery, verification); the flow
it then fetches through the proxy carries the message (``handler.flow_view``). The wording and
the timing do not depend on whether the account exists.
"""

from __future__ import annotations

import copy
import html
import logging
import math
from collections.abc import Collection
from typing import Any

import orjson
from aiohttp import ClientError, ClientTimeout, web
from yarl import URL

from proxy.guard.core import Guard
from proxy.guard.policy import format_wait
from proxy.guard.store import FlowHold
from proxy.kernel.errors import KratosHooksError
from proxy.kernel.http_metrics import UPSTREAM_ERRORS
from proxy.kernel.kernel_keys import FORWARDER, KRATOS_PUBLIC, SETTINGS

log = logging.getLogger("kratos_hooks.guard")

JSON_TYPE = "application/json; charset=utf-8"
FLOW_FETCH_TIMEOUT = ClientTimeout(total=5)
MAX_FLOW_BYTES = 1024 * 1024
LOCKOUT_TEXT = "Too many failed sign-in attempts. Please wait {wait} before trying again."
RATE_TEXT = "Too many requests from your network. Please wait {wait} before trying again."


class LoginBackoff(KratosHooksError):
    """Blocked, and the caller's flow could not be shown: Kratos' error shape, 429."""

    status = 429
    error_id = "login_backoff"
    message = "too many attempts, please wait before trying again"


def lockout_message(message_id: int, retry_after: int, *, rate: bool = False) -> dict[str, Any]:
    text = (RATE_TEXT if rate else LOCKOUT_TEXT).format(wait=format_wait(retry_after))
    return {
        "id": message_id,
        "text": text,
        "type": "error",
        "context": {"reason": "login_backoff", "retry_after_seconds": retry_after},
    }


def with_message(
    flow: dict[str, Any], message: dict[str, Any], *, drop_ids: Collection[int]
) -> dict[str, Any]:
    """The flow with ``message`` in ``ui.messages`` (replacing an earlier lockout) and without
    any message whose id is in ``drop_ids`` — in ``ui.messages`` and on every node.

    ``drop_ids`` are the credential-rejection ids (``guard.failure_ids``, 4000006 by default):
    the flow Kratos keeps still carries the previous attempt's "credentials are invalid",
    but this attempt's password was never checked, so a UI showing both would tell a user who
    typed the right password that it is wrong. Everything else (other messages, nodes, their
    values, the CSRF token) is kept as Kratos wrote it.
    """
    out = copy.deepcopy(flow)
    ui = out.setdefault("ui", {})
    unwanted = {message["id"], *drop_ids}
    ui["messages"] = [*_without(ui.get("messages"), unwanted), message]
    nodes = ui.get("nodes")
    for node in nodes if isinstance(nodes, list) else ():
        if isinstance(node, dict) and isinstance(node.get("messages"), list):
            node["messages"] = _without(node["messages"], set(drop_ids))
    return out


def _without(messages: object, ids: set[int]) -> list[Any]:
    if not isinstance(messages, list):
        return []
    return [m for m in messages if not (isinstance(m, dict) and m.get("id") in ids)]


def seconds(retry_after: float) -> int:
    return max(1, math.ceil(retry_after))


def flow_url(request: web.Request, kind: str, flow_id: str) -> URL:
    base = request.app[SETTINGS].kratos.public_url.rstrip("/")
    return URL(f"{base}/self-service/{kind}/flows").with_query(id=flow_id)


async def fetch_flow(request: web.Request, kind: str, flow_id: str) -> dict[str, Any] | None:
    """The caller's flow as Kratos shows it to the caller (same cookies), or None."""
    headers = request.app[FORWARDER].upstream_headers(request)
    for name in ("Content-Type", "Content-Length", "Content-Encoding", "Accept-Encoding"):
        headers.popall(name, None)
    headers["Accept"] = "application/json"
    session = request.app[KRATOS_PUBLIC]
    try:
        async with session.get(
            flow_url(request, kind, flow_id),
            headers=headers,
            allow_redirects=False,
            timeout=FLOW_FETCH_TIMEOUT,
        ) as response:
            if response.status != 200:
                return None
            body = await response.content.read(MAX_FLOW_BYTES + 1)
    except (ClientError, TimeoutError) as exc:
        UPSTREAM_ERRORS.labels("timeout" if isinstance(exc, TimeoutError) else "connect").inc()
        log.warning("flow unavailable for a lockout answer", extra={"error": type(exc).__name__})
        return None
    if len(body) > MAX_FLOW_BYTES:
        return None
    try:
        flow = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return flow if isinstance(flow, dict) and isinstance(flow.get("ui"), dict) else None


def refuse(exc: KratosHooksError, *, json_mode: bool) -> web.Response:
    """An error in the caller's format: Kratos' JSON for JSON callers, a page for browsers."""
    if json_mode:
        raise exc
    page = (
        "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{reason}</p>"
    ).format(title=html.escape(exc.message), reason=html.escape(exc.reason))
    response = web.Response(status=exc.status, text=page, content_type="text/html")
    response.headers.update(exc.headers)
    return response


async def blocked(
    request: web.Request,
    guard: Guard,
    *,
    kind: str,
    flow_id: str,
    json_mode: bool,
    retry_after: float,
    rate: bool = False,
) -> web.StreamResponse:
    config = guard.config
    wait = seconds(retry_after)
    headers = {"Retry-After": str(wait)}
    message = lockout_message(config.message_id, wait, rate=rate)
    if flow_id:
        await guard.remember_flow(flow_id, FlowHold(guard.clock() + wait, rate=rate))
    if json_mode:
        flow = await fetch_flow(request, kind, flow_id) if flow_id else None
        if flow is not None:
            body = orjson.dumps(with_message(flow, message, drop_ids=guard.failure_ids))
            status = 429 if config.always_429 else 400
            headers["Content-Type"] = JSON_TYPE
            return web.Response(status=status, body=body, headers=headers)
    elif kind == "login" and config.browser_mode == "legacy":
        target = URL(config.legacy_redirect_url).update_query(lockout="true", retry_after=str(wait))
        return web.Response(status=303, headers={**headers, "Location": str(target)})
    elif flow_id and (ui := guard.ui_url(kind)):
        target = URL(ui).update_query(flow=flow_id)
        return web.Response(status=303, headers={**headers, "Location": str(target)})
    error = LoginBackoff(message["text"], headers=headers, details={"retry_after_seconds": wait})
    return refuse(error, json_mode=json_mode)
