"""What Kratos' Go libraries make of a request: routing, identifiers, media types, UUIDs.

The stand-in must merge exactly what Kratos merges, or a bypass of the guard would not show
in the tests (a variant the guard misses would reach a stand-in that also misses it). So it
does not re-implement Go here: every answer comes from the test suite's Go oracle
(``tests/support/go_oracle.py``: Go's ``net/url``, ``path.Clean``, ``mime``, julienschmidt's
httprouter, ``x/text/secure/precis``, gofrs/uuid), and the phone-number step from
``phonenumbers``, the Python port of the libphonenumber Kratos uses.

Without a Go toolchain (``make demo`` on a machine without it) a plain fallback answers:
exact paths only, identifiers trimmed and lower-cased — enough to try the flows by hand, not
to judge the guard. The suite always runs with the oracle.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import phonenumbers

log = logging.getLogger("kratos_standin")


@dataclass(frozen=True, slots=True)
class Route:
    """Where Kratos' router sends a request."""

    kind: str  # handler | redirect | not_found | method_not_allowed | bad_request
    handler: str = ""  # "POST /self-service/login"
    status: int = 0
    location: str = ""
    allow: str = ""


@functools.cache
def _oracle() -> Any:
    try:
        from tests.support.go_oracle import shared

        return shared()
    except Exception as exc:  # no Go here: the demo's plain fallback
        log.warning("Go oracle unavailable (%s): the stand-in routes exact paths only", exc)
        return None


def route(method: str, target: str, registered: frozenset[str]) -> Route:
    oracle = _oracle()
    if oracle is None:
        path = target.partition("?")[0]
        if f"{method} {path}" in registered:
            return Route("handler", f"{method} {path}")
        allowed = sorted(r.split(" ", 1)[0] for r in registered if r.endswith(f" {path}"))
        return (
            Route("method_not_allowed", allow=", ".join(allowed)) if allowed else Route("not_found")
        )
    answer = oracle.route(method, target)
    allow = str(getattr(answer, "allow", None) or "")
    return Route(
        kind=answer.kind,
        handler=answer.handler or "",
        status=answer.status or 0,
        location=answer.location or "",
        allow=allow,
    )


def query_get(raw_query: str, name: str) -> str:
    oracle = _oracle()
    if oracle is None:
        from urllib.parse import parse_qs

        return parse_qs(raw_query, keep_blank_values=True).get(name, [""])[0]
    return str(oracle.query_get(raw_query, name))


def parse_uuid(value: str) -> str | None:
    """gofrs ``FromString``: the canonical form, or None."""
    if not value:
        return None
    oracle = _oracle()
    if oracle is None:
        import uuid

        try:
            return str(uuid.UUID(value))
        except ValueError:
            return None
    parsed = oracle.uuid(value)
    return str(parsed) if parsed else None


def body_decoder(content_type: str | None) -> str | None:
    """The decoder ory/x decoderx picks for a ``Content-Type`` (``mime.ParseMediaType``,
    Go's lower-casing): "json", "form", "multipart", or None when Kratos refuses the body."""
    if not content_type:
        return None
    oracle = _oracle()
    if oracle is None:
        kind = content_type.partition(";")[0].strip().lower()
    else:
        answer = oracle.media_type(content_type)
        if answer.decoder_new is None:
            return None
        kind = answer.type
    return {
        "application/json": "json",
        "application/x-www-form-urlencoded": "form",
        "multipart/form-data": "multipart",
    }.get(kind)


@functools.lru_cache(maxsize=4096)
def normalize_identifier(value: str) -> str:
    """Kratos' ``GracefulNormalization``: canonicalise, then E.164 for a valid phone number."""
    oracle = _oracle()
    if oracle is not None:
        from tests.support.go_oracle import kratos_identifier

        return kratos_identifier(oracle.identifier(value))
    canonical = value.strip().lower()
    try:
        number = phonenumbers.parse(canonical, None)
    except phonenumbers.NumberParseException:
        return canonical
    if phonenumbers.is_valid_number(number):
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return canonical


def flow_param(query_string: str, name: str) -> str:
    """A flow id from the query as Kratos reads it (``x.ParseUUID(r.URL.Query().Get(name))``):
    the canonical form, or "" when it is missing or no UUID."""
    return parse_uuid(query_get(query_string, name)) or ""
