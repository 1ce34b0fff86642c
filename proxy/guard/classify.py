"""What was submitted and what Kratos made of it: pure functions over bytes and headers.

``parse_submission`` reads the three body encodings Kratos accepts; ``classify`` turns
Kratos' answer into an ``Outcome`` (KRATOS.md, "Login flow"): a session issued is a success,
rejected credentials a failure, and everything that says nothing about the secret — expired
flow, CSRF, disabled identity, schema errors, 5xx — is not counted.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from proxy.guard.flows import json_object
from proxy.guard.policy import Outcome
from proxy.kernel.accept import accept_ranges
from proxy.kernel.canonical import canonical_uuid, query_get
from proxy.kernel.mediatype import media_type

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"
GUARDED_TYPES = frozenset({FORM, MULTIPART, JSON})

# The field that carries each method's secret: a submission without it checks nothing.
SECRET_FIELDS = {
    "password": "password",
    "totp": "totp_code",
    "lookup_secret": "lookup_secret",
    "code": "code",
    "webauthn": "webauthn_login",
    "passkey": "passkey_login",
}
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Submission:
    method: str
    identifier: str  # as sent; empty for second factors
    has_secret: bool  # the named method's own secret field is filled in
    # Every method whose secret field is filled in, whatever ``method`` says: the guard judges
    # a body that carries a secret even when its ``method`` looks harmless (a decoder that
    # read ``method`` differently from Kratos must not open a way around the guard).
    secrets: frozenset[str] = frozenset()


# --- JSON mode: Kratos' content negotiation (golang/gddo NegotiateContentType) ----------


def negotiates_json(accept: str) -> bool:
    """Whether ``Accept`` prefers JSON over HTML; exact beats ``type/*`` beats ``*/*``,
    and a full tie goes to HTML (so ``*/*`` is a browser)."""
    best, best_q, best_rank = "text/html", -1.0, 3
    for offer in ("text/html", JSON):
        for value, q in accept_ranges(accept):
            if q == 0.0 or q < best_q:
                continue
            if value == "*/*":
                rank = 2
            elif value.endswith("/*") and offer.startswith(value[:-1]):
                rank = 1
            elif value == offer:
                rank = 0
            else:
                continue
            if q > best_q or rank < best_rank:
                best, best_q, best_rank = offer, q, rank
    return best == JSON


def json_mode(content_type: str | None, accept: str | None) -> bool:
    """Kratos answers in JSON when the body is exactly ``application/json`` or Accept asks."""
    return content_type == JSON or negotiates_json(accept or "")


def answers_json(content_type: str | None, accept: str | None, has_cookies: bool) -> bool:
    """Whether the guard's own answer (a block, a 413) should be JSON.

    Kratos' JSON mode, widened to what only an app would send: a JSON body with parameters
    (``application/json; charset=utf-8``), or no cookie at all — API flows must carry none
    and a browser flow cannot pass its CSRF check without one — so a native app is never
    sent a redirect it cannot follow.
    """
    return json_mode(content_type, accept) or media_type(content_type) == JSON or not has_cookies


# --- the submission --------------------------------------------------------------------


# The fields that say whose attempt it is and whether it carries a secret. A form that sends
# one of them twice with different values is refused: which copy Kratos reads is its parser's
# business, and a guard that judged the other one could be steered by a decoy. (The same value
# twice — a hidden input beside its submit button — is harmless.)
JUDGED_FIELDS = frozenset({"method", "identifier", "password_identifier", *SECRET_FIELDS.values()})


def _pairs(content_type: str, raw: bytes) -> Iterator[tuple[str, str]]:
    if media_type(content_type) == FORM:
        yield from parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            yield name, payload.decode("utf-8", "replace")


def _form_fields(content_type: str, raw: bytes) -> dict[str, str]:
    """The fields of a form body; ValueError when a judged field comes with two values."""
    fields: dict[str, str] = {}
    for name, value in _pairs(content_type, raw):
        if name in fields:
            if name in JUDGED_FIELDS and fields[name] != value:
                raise ValueError(f"the field {name!r} is sent with two values")
            continue  # Go's Form.Get: the first value wins
        fields[name] = value
    return fields


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""


def _body_fields(content_type: str | None, raw: bytes) -> Mapping[str, Any] | None:
    if content_type is None and not raw:
        return {}  # no body at all (a GET): only the query speaks
    kind = media_type(content_type)
    try:
        if kind == JSON:
            document = orjson.loads(raw)
            return document if isinstance(document, dict) else None
        if kind in (FORM, MULTIPART):
            return _form_fields(content_type or "", raw)
    except (orjson.JSONDecodeError, UnicodeError, ValueError):
        return None
    return None


def parse_submission(
    content_type: str | None, raw: bytes, query: Mapping[str, str] | None = None
) -> Submission | None:
    """The method, identifier and whether a secret was sent; None when the submission
    cannot be judged (unreadable JSON, a judged form field sent twice, or sent in the query
    and the body with different values): the caller refuses it.

    ``query`` holds the judged fields of the URL's query (Kratos' decoder reads the query
    too for some methods, and GET submissions carry nothing else).
    """
    body = _body_fields(content_type, raw)
    if body is None:
        return None
    fields = dict(body)
    for name, value in (query or {}).items():
        if not value:
            continue
        if name in fields and fields[name] != value:
            return None
        fields.setdefault(name, value)
    method = _text(fields, "method")
    identifier = _text(fields, "identifier") or _text(fields, "password_identifier")
    secret_field = SECRET_FIELDS.get(method)
    has_secret = bool(fields.get(secret_field)) if secret_field else True
    secrets = frozenset(m for m, field in SECRET_FIELDS.items() if fields.get(field))
    return Submission(method, identifier, has_secret, secrets)


def query_fields(param: Callable[[str], str]) -> dict[str, str]:
    """The judged fields a URL's query carries, read with ``param`` (Kratos' reading)."""
    return {name: value for name in JUDGED_FIELDS if (value := param(name))}


# --- Kratos' answer --------------------------------------------------------------------


def sets_session(set_cookies: Iterable[str], cookie_name: str) -> bool:
    """Whether a ``Set-Cookie`` writes a (non-empty, non-expiring) session cookie."""
    for header in set_cookies:
        pair, _, attributes = header.partition(";")
        name, _, value = pair.partition("=")
        if name.strip() != cookie_name or not value.strip().strip('"'):
            continue
        attrs = attributes.lower().replace(" ", "")
        if "max-age=0" in attrs or "max-age=-" in attrs:
            continue
        return True
    return False


def back_to_flow(location: str | None, flow_id: str) -> str | None:
    """The UI a redirect sends the browser to when it is Kratos showing the *same* flow
    again (a rejected submission, a code sent), else None.

    Only the same flow counts (``flow_id`` canonical, the Location's flow parsed the same
    way): an expired flow comes back with a new id, CSRF goes to the error UI, a success to
    ``return_to`` — none of them is the flow's UI.
    """
    if not flow_id or not location:
        return None
    target = urlsplit(location)
    if canonical_uuid(query_get(target.query, "flow")) != flow_id:
        return None
    return location.partition("?")[0]


def _message_ids(flow: Mapping[str, Any]) -> Iterator[int]:
    ui = flow.get("ui")
    if not isinstance(ui, dict):
        return
    groups = [ui.get("messages")]
    nodes = ui.get("nodes")
    if isinstance(nodes, list):
        groups += [node.get("messages") for node in nodes if isinstance(node, dict)]
    for messages in groups:
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict) and isinstance(message.get("id"), int):
                    yield message["id"]


def classify(
    status: int,
    *,
    set_cookies: Iterable[str],
    location: str | None,
    body: bytes | None,
    flow_id: str,
    session_cookie: str,
    failure_ids: frozenset[int],
) -> Outcome:
    """Kratos' answer to a login submission, as evidence about the secret.

    ``body`` is the decoded JSON body, or None when it was not read (too large, unknown
    encoding) — then only what status and headers prove is used.
    """
    session_set = sets_session(set_cookies, session_cookie)
    if status in REDIRECTS:
        if session_set:
            return Outcome.SUCCESS
        # Back to the login UI with the same flow: the flow now carries the rejection.
        return Outcome.FAILURE if back_to_flow(location, flow_id) else Outcome.NOT_COUNTED
    document = json_object(body)
    if status == 200:
        if session_set or (document is not None and "session_token" in document):
            return Outcome.SUCCESS
        return Outcome.NOT_COUNTED
    if status == 422 and document is not None:
        error = document.get("error")
        if isinstance(error, dict) and error.get("id") == "browser_location_change_required":
            return Outcome.SUCCESS  # the password step passed; a second factor follows
        return Outcome.NOT_COUNTED
    if status == 400 and document is not None:
        if any(i in failure_ids for i in _message_ids(document)):
            return Outcome.FAILURE
    return Outcome.NOT_COUNTED
