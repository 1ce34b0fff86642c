"""The answers a blocked or refused caller gets, in the form its Kratos UI already renders:
pure functions from what was decided (and the caller's flow, already fetched) to a ``Reply``.

Stock Kratos UIs and the Ory SDKs treat a 400 carrying the flow as "show the flow's
messages" and anything else as a generic failure, so a blocked JSON caller gets its own flow
back with a lockout message added — exactly how a rejected password looks, minus the previous
attempt's rejection (``flows.with_message``). A plain browser is sent back to its flow's UI
(login, registration, recovery, verification); the flow it then fetches through the proxy
carries the message (``handler.flow_view``). The wording and the timing do not depend on
whether the account exists.
"""

from __future__ import annotations

import html
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

from config.backoff import BackoffSettings
from proxy.guard.flows import lockout_message, with_message
from proxy.kernel.errors import KratosHooksError
from proxy.kernel.hooked import Reply

JSON_TYPE = "application/json; charset=utf-8"


class LoginBackoff(KratosHooksError):
    """Blocked, and the caller's flow could not be shown: Kratos' error shape, 429."""

    status = 429
    error_id = "login_backoff"
    message = "too many attempts, please wait before trying again"


@dataclass(frozen=True, slots=True)
class Block:
    """What was decided about a refused submission: which flow, for how long, and why."""

    kind: str  # the flow kind: login, registration, recovery, verification
    flow_id: str  # canonical, "" when the submission named none Kratos could parse
    wait: int  # whole seconds (``flows.seconds``)
    rate: bool  # a plain rate window, not the backoff
    json_mode: bool


def refuse(exc: KratosHooksError, *, json_mode: bool) -> Reply:
    """An error in the caller's format: Kratos' JSON for JSON callers (raised, for the
    transport to render with the request id), a small page for browsers."""
    if json_mode:
        raise exc
    page = (
        "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{reason}</p>"
    ).format(title=html.escape(exc.message), reason=html.escape(exc.reason))
    headers = {**exc.headers, "Content-Type": "text/html; charset=utf-8"}
    return Reply.own(exc.status, page.encode(), headers)


def blocked(
    block: Block,
    config: BackoffSettings,
    *,
    flow: dict[str, Any] | None,
    ui_url: str | None,
    drop_ids: Collection[int],
) -> Reply:
    """The answer to a refused submission. ``flow`` is the caller's flow as Kratos shows it
    to the caller (fetched by the hook for JSON callers), ``ui_url`` the flow kind's UI."""
    headers = {"Retry-After": str(block.wait)}
    message = lockout_message(config.message_id, block.wait, rate=block.rate)
    if block.json_mode:
        if flow is not None:
            body = orjson.dumps(with_message(flow, message, drop_ids=drop_ids))
            status = 429 if config.always_429 else 400
            return Reply.own(status, body, {**headers, "Content-Type": JSON_TYPE})
    elif block.kind == "login" and config.browser_mode == "legacy":
        target = URL(config.legacy_redirect_url).update_query(
            lockout="true", retry_after=str(block.wait)
        )
        return Reply.own(303, b"", {**headers, "Location": str(target)})
    elif block.flow_id and ui_url:
        target = URL(ui_url).update_query(flow=block.flow_id)
        return Reply.own(303, b"", {**headers, "Location": str(target)})
    details = {"retry_after_seconds": block.wait}
    error = LoginBackoff(message["text"], headers=headers, details=details)
    return refuse(error, json_mode=block.json_mode)
