"""The headers an allow answer carries to the upstream app: pure functions.

Values come from the identity (traits, metadata) that users can partly edit themselves, and
the proxy copies them into a request the app trusts unconditionally — so every value is
stripped of CR, LF and other control characters (no header splitting, no log forging) and
bounded in length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from handlers.decisions.subject import Subject, dig
from proxy.kernel.tokens import TokenPrincipal

IDENTITY_HEADERS = (
    "X-User-ID",
    "X-User-Email",
    "X-User-Roles",
    "X-User-Verified",
    "X-Session-ID",
    "X-Auth-Time",
)
# Seed guide §6.6: what a token's allow answer says, by kind (a PAT speaks for its owner).
TOKEN_HEADERS = {
    "pat": ("X-User-ID", "X-Token-ID", "X-Token-Scopes"),
    "key": ("X-Org-ID", "X-Key-ID", "X-Key-Scopes"),
    "svc": ("X-Service-Name", "X-Service-Scopes"),
}
# Every header an allow answer may carry: the deploy examples copy these and strip the
# client's own copies.
ALL_HEADERS = IDENTITY_HEADERS + tuple(
    dict.fromkeys(h for names in TOKEN_HEADERS.values() for h in names if h != "X-User-ID")
)
MAX_VALUE = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]*)\s*\}\}")
TEMPLATE_SYNTAX = "{{ dotted.path }} placeholders, e.g. {{ identity.traits.email }}"


def sanitize(value: str) -> str:
    return _CONTROL.sub("", value)[:MAX_VALUE].strip()


def template_error(template: str) -> str | None:
    """Why ``template`` is unusable, or None. Braces outside a placeholder are a typo."""
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        return f"unbalanced or malformed placeholder; expected {TEMPLATE_SYNTAX}"
    return None


def _text(value: object) -> str:
    if value is None or isinstance(value, Mapping):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value if not isinstance(item, Mapping | list))
    return str(value)


def render(template: str, session: Mapping[str, object]) -> str:
    """``{{ path }}`` replaced by the session's value there ("" when absent)."""
    return sanitize(_PLACEHOLDER.sub(lambda m: _text(dig(session, m.group(1))), template))


def identity_headers(subject: Subject) -> dict[str, str]:
    """The standard set (seed guide §3.5); empty for the anonymous subject."""
    if subject.anonymous:
        return {}
    key = "identity_headers:" + subject.roles_path
    cached: dict[str, str] | None = subject.memo.get(key)
    if cached is None:
        cached = subject.memo[key] = _identity_headers(subject)
    return dict(cached)


def _token_headers(token: TokenPrincipal) -> dict[str, str]:
    scopes = ",".join(token.scopes)
    if token.kind == "pat":
        values = {"X-User-ID": token.owner, "X-Token-ID": token.token_id, "X-Token-Scopes": scopes}
    elif token.kind == "key":
        values = {"X-Org-ID": token.owner, "X-Key-ID": token.token_id, "X-Key-Scopes": scopes}
    else:
        values = {"X-Service-Name": token.owner, "X-Service-Scopes": scopes}
    return {name: sanitize(value) for name, value in values.items()}


def token_document(token: TokenPrincipal) -> dict[str, object]:
    """What a rule's ``headers`` templates see for a token subject (``{{ token.id }}`` …)."""
    return {
        "token": {
            "id": token.token_id,
            "kind": token.kind,
            "owner": token.owner,
            "scopes": list(token.scopes),
        }
    }


def _identity_headers(subject: Subject) -> dict[str, str]:
    if subject.token is not None:
        return _token_headers(subject.token)
    values = {
        "X-User-ID": subject.id,
        "X-User-Email": subject.email,
        "X-User-Roles": ",".join(subject.roles),
        "X-User-Verified": "true" if subject.verified else "false",
        "X-Session-ID": subject.session_id,
        "X-Auth-Time": subject.auth_time,
    }
    return {name: sanitize(value) for name, value in values.items()}


NO_STORE = {"Cache-Control": "no-store"}


def allow_headers(
    subject: Subject, extras: tuple[tuple[str, str], ...], *, with_identity: bool
) -> Mapping[str, str]:
    """The headers of an allow answer: identity, the rule's extras, and ``no-store`` (an
    answer about one credential must never be cached by a proxy for another)."""
    if with_identity and not extras and not subject.anonymous:
        return _identity_headers_no_store(subject)  # the common case, made once per session
    headers = identity_headers(subject) if with_identity else {}
    document = subject.session if subject.token is None else token_document(subject.token)
    for name, template in extras:
        headers[name] = render(template, document)
    return headers | NO_STORE


def _identity_headers_no_store(subject: Subject) -> CIMultiDictProxy[str]:
    # A read-only multidict: web.Response copies it in one C call, where a dict is re-keyed
    # header by header — on every decision of a session.
    key = "allow_headers:" + subject.roles_path
    cached: CIMultiDictProxy[str] | None = subject.memo.get(key)
    if cached is None:
        headers = CIMultiDict(identity_headers(subject) | NO_STORE)
        cached = subject.memo[key] = CIMultiDictProxy(headers)
    return cached
