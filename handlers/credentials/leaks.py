"""``POST /tokens/leaks``: a secret-scanning service reports tokens it found in public.

Authentication, with one of the ``TOKENS_LEAK_SECRETS`` (several at once, for rotation;
compared in constant time, every one of them):

    Authorization: Bearer <secret>
    X-Signature-256: sha256=<hex HMAC-SHA-256 of the exact body under the secret>

The body is a JSON list of candidates, as scanners send them — ``[{"token": "pat_…",
"type": "…", "url": "…", "source": "…"}, …]`` — or ``{"tokens": ["pat_…", …]}``; at most
``MAX_CANDIDATES``. Every well-formed token that is known and active is revoked at once
(reason "leaked", audited), every replica refuses it within a second, and its owner is told
through the outbox (``TOKEN_LEAKED``). The answer lists, in the same order, what each
candidate was — never the token itself:

    {"results": [{"active": true, "result": "revoked", "token_id": "tok_…"},
                 {"active": false, "result": "unknown"}, …]}
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from handlers.credentials.page_common import PageContext, json_error, json_reply
from handlers.credentials.store import StoreUnavailable
from proxy.kernel.hooked import Hooked, Reply

MAX_BODY = 256 * 1024
MAX_CANDIDATES = 1000


def authenticated(secrets: tuple[str, ...], headers: Any, body: bytes) -> bool:
    """Whether the call carries a configured secret or a valid signature (pure)."""
    scheme, _, presented = headers.get("Authorization", "").partition(" ")
    bearer = presented.strip().encode() if scheme.lower() == "bearer" else b""
    signature = headers.get("X-Signature-256", "").strip().lower().removeprefix("sha256=")
    ok = False
    for secret in secrets:
        key = secret.encode()
        expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        ok |= bool(bearer) and hmac.compare_digest(bearer, key)
        ok |= bool(signature) and hmac.compare_digest(signature.encode(), expected)
    return ok


def candidates(document: object) -> list[str] | None:
    """The reported tokens, or None when the body is not one of the two shapes."""
    if isinstance(document, dict) and isinstance(document.get("tokens"), list):
        items: list[Any] = document["tokens"]
    elif isinstance(document, list):
        items = [i.get("token") if isinstance(i, dict) else i for i in document]
    else:
        return None
    if not all(isinstance(i, str) for i in items) or len(items) > MAX_CANDIDATES:
        return None
    return items


def _source(document: object) -> str:
    if isinstance(document, list) and document and isinstance(document[0], dict):
        source = document[0].get("source")
        if isinstance(source, str) and source:
            return "leak-report:" + "".join(c for c in source if c.isalnum() or c in "-_.")[:40]
    return "leak-report"


async def leak_report(context: PageContext, request: Hooked) -> Reply:
    if request.method != "POST":
        return json_error(405, "method_not_allowed", "POST a list of tokens.", request)
    secrets = context.config.leak_secrets
    if not secrets:
        return json_error(
            503, "leak_reports_not_configured", "Set TOKENS_LEAK_SECRETS to enable.", request
        )
    body = await request.read(MAX_BODY, "The leak report")
    if not authenticated(secrets, request.headers, body):
        return json_error(401, "unauthorized", "Missing or invalid credentials.", request)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = None
    reported = candidates(document)
    if reported is None:
        return json_error(
            400, "bad_request", "Expected a JSON list of {token, …} or {tokens: […]}.", request
        )
    try:
        results = await context.credentials.leak(reported, _source(document))
    except StoreUnavailable:
        return json_error(503, "dependency_unavailable", "The token store is unavailable.", request)
    return json_reply(
        200,
        {
            "results": [
                {"active": r.active, "result": r.result}
                | ({"token_id": r.token_id} if r.token_id else {})
                for r in results
            ]
        },
    )
