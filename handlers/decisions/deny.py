"""How a denial is said to each kind of caller: one pure function, tested case by case.

    browser (Accept prefers text/html, not XHR)   GET/HEAD → 302 to login, other → 303
    API / XHR                                     401 JSON + WWW-Authenticate, 403 JSON …
                                                  (step-up: 403 {"error": "aal2_required", …})
    refused path (any caller but nginx style)     400 JSON, Kratos' shape (``bad_request``)
    a token refused (any caller, browsers too)    401 invalid_token / token_expired, 403
                                                  insufficient_scope: RFC 6750 JSON and
                                                  ``WWW-Authenticate: Bearer error=…``
    nginx style                                   401 / 403 only, login URL in X-Login
                                                  (a refused path: 403)

Redirects are always absolute (Traefik would resolve a relative ``Location`` against the
*auth server*), and ``return_to`` is the absolute original URL rebuilt from the forwarded
headers. nginx turns any status but 401/403 into a 500 and drops the body, so that style folds
everything it can into those two and puts the login URL where ``error_page`` can read it.
A 503 stays a 503 there: nginx's 500 is the honest answer when Kratos is down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from handlers.decisions.request import OriginalRequest
from handlers.decisions.rules import ErrorStyle
from proxy.kernel.accept import accept_ranges
from proxy.kernel.errors import error_document

DenialKind = Literal[
    "unauthenticated",
    "forbidden",
    "step_up",
    "not_found",
    "rate_limited",
    "unavailable",
    "bad_path",
    "invalid_token",
    "token_expired",
    "insufficient_scope",
]
BEARER_KINDS = frozenset({"invalid_token", "token_expired", "insufficient_scope"})


@dataclass(frozen=True, slots=True)
class Denial:
    kind: DenialKind
    reason: str
    retry_after: int | None = None
    status: int | None = None  # only for not_found: the configured no-match status
    scope: tuple[str, ...] = ()  # only for insufficient_scope: the scopes required


@dataclass(frozen=True, slots=True)
class Caller:
    original: OriginalRequest
    browser: bool
    style: ErrorStyle
    login_url: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] | None = None


def is_browser(accept: str | None, requested_with: str | None) -> bool:
    """A browser navigation: HTML explicitly preferred to JSON, and not an XHR/fetch call."""
    if (requested_with or "").lower() == "xmlhttprequest" or not accept:
        return False
    weights: dict[str, float] = {}
    for media, q in accept_ranges(accept):
        weights[media] = max(q, weights.get(media, 0.0))
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("application/json", 0.0)


def login_redirect(login_url: str, original: OriginalRequest, *, aal: str | None = None) -> str:
    """The absolute login URL with an absolute ``return_to`` (and ``aal`` for step-up)."""
    base = original.origin + login_url if login_url.startswith("/") else login_url
    params = {"aal": aal} if aal else {}
    params["return_to"] = original.url
    return f"{base}{'&' if '?' in base else '?'}{urlencode(params)}"


def _json(status: int, error_id: str, reason: str, caller: Caller, **details: Any) -> Answer:
    body = error_document(
        status, error_id=error_id, reason=reason, request_id=caller.request_id, details=details
    )
    return Answer(status, (), body)


def _step_up(denial: Denial, caller: Caller) -> dict[str, Any]:
    """``{"error": "aal2_required", …}``: a flat, OAuth-style code a client can switch on,
    with the step-up login an SPA sends its user to."""
    return {
        "error": "aal2_required",
        "error_description": denial.reason,
        "required_aal": "aal2",
        "redirect_browser_to": login_redirect(caller.login_url, caller.original, aal="aal2"),
        "request_id": caller.request_id,
    }


def _realm(caller: Caller) -> tuple[str, str]:
    host = caller.original.hostname.replace('"', "")
    return ("WWW-Authenticate", f'Bearer realm="{host}", Session realm="{host}"')


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


def _bearer_header(denial: Denial, caller: Caller) -> tuple[str, str]:
    """RFC 6750 §3: the error, a description, and the scopes for ``insufficient_scope``."""
    error = "insufficient_scope" if denial.kind == "insufficient_scope" else "invalid_token"
    host = caller.original.hostname.replace('"', "")
    value = f'Bearer realm="{host}", error="{error}", error_description="{_quoted(denial.reason)}"'
    if denial.scope:
        value += f', scope="{_quoted(" ".join(denial.scope))}"'
    return ("WWW-Authenticate", value)


def _bearer(denial: Denial, caller: Caller) -> Answer:
    """A refused token: OAuth's flat error shape (``token_expired`` keeps its own code in the
    body; the header says ``invalid_token``, the only RFC 6750 code for it)."""
    status = 403 if denial.kind == "insufficient_scope" else 401
    body: dict[str, Any] = {
        "error": denial.kind,
        "error_description": denial.reason,
        "request_id": caller.request_id,
    }
    if denial.scope:
        body["scope"] = " ".join(denial.scope)
    return Answer(status, (_bearer_header(denial, caller),), body)


def _nginx(denial: Denial, caller: Caller) -> Answer:
    if denial.kind == "unavailable":
        return Answer(503)
    if denial.kind in BEARER_KINDS:
        answer = _bearer(denial, caller)
        return Answer(answer.status, answer.headers)
    if denial.kind in {"unauthenticated", "step_up"}:
        status = 401 if denial.kind == "unauthenticated" else 403
        aal = "aal2" if denial.kind == "step_up" else None
        if not caller.browser:
            return Answer(status, (_realm(caller),) if status == 401 else ())
        return Answer(
            status, (("X-Login", login_redirect(caller.login_url, caller.original, aal=aal)),)
        )
    headers = (("Retry-After", str(denial.retry_after)),) if denial.retry_after else ()
    return Answer(403, headers)


def deny(denial: Denial, caller: Caller) -> Answer:
    """The answer for ``denial`` in the form ``caller`` understands."""
    if caller.style == "nginx":
        return _nginx(denial, caller)
    kind = denial.kind
    if kind in BEARER_KINDS:  # a token's caller is a program: no login redirect
        return _bearer(denial, caller)
    if kind in {"unauthenticated", "step_up"} and caller.browser:
        aal = "aal2" if kind == "step_up" else None
        location = login_redirect(caller.login_url, caller.original, aal=aal)
        status = 302 if caller.original.method in {"GET", "HEAD"} else 303
        return Answer(status, (("Location", location),))
    if kind == "unauthenticated":
        answer = _json(401, "unauthorized", denial.reason, caller)
        return Answer(401, (_realm(caller),), answer.body)
    if kind == "step_up":
        return Answer(403, (), _step_up(denial, caller))
    if kind == "forbidden":
        return _json(403, "forbidden", denial.reason, caller)
    if kind == "bad_path":  # signing in would not help: no login redirect, browser or not
        return _json(400, "bad_request", denial.reason, caller)
    if kind == "not_found":
        status = denial.status or 404
        return _json(status, "no_rule_matched", denial.reason, caller)
    if kind == "rate_limited":
        answer = _json(429, "rate_limited", denial.reason, caller)
        return Answer(429, (("Retry-After", str(denial.retry_after or 1)),), answer.body)
    return _json(503, "dependency_unavailable", denial.reason, caller)
