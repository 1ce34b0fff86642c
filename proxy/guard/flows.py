"""Kratos' flow documents as the guard reads and rewrites them: pure functions.

One place reads a JSON answer of Kratos (undoing the ``Content-Encoding`` the proxy passes
through), one place decides it is a flow, and one place writes the lockout into it — shared
by the outcome classifier, the lockout answer and the flow view.
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Collection
from typing import Any

import orjson

from proxy.guard.policy import format_wait
from proxy.kernel.hooked import Answer

LOCKOUT_TEXT = "Too many failed sign-in attempts. Please wait {wait} before trying again."
RATE_TEXT = "Too many requests from your network. Please wait {wait} before trying again."


def decoded(body: bytes, content_encoding: str | None) -> bytes | None:
    """The body as JSON bytes, undoing gzip/deflate (the proxy never decompresses on the
    way through); None for an encoding we cannot read."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            return zlib.decompress(body, wbits=47)  # gzip or zlib, detected from the header
        except zlib.error:
            return None
    return None


def json_object(body: bytes | None) -> dict[str, Any] | None:
    """``body`` as a JSON object, or None (empty, not JSON, not an object)."""
    if not body:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def document(answer: Answer) -> dict[str, Any] | None:
    """Kratos' answer as a JSON object; None when it was not read whole or is not one."""
    if not answer.complete:
        return None
    return json_object(decoded(answer.body, answer.headers.get("Content-Encoding")))


def as_flow(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """``doc`` when it is a self-service flow (it has a ``ui``), else None."""
    return doc if doc is not None and isinstance(doc.get("ui"), dict) else None


def seconds(retry_after: float) -> int:
    """A wait as the whole seconds announced (``Retry-After``, the message): at least 1."""
    return max(1, math.ceil(retry_after))


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
