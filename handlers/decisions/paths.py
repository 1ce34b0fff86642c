"""The path a rule judges: one canonical spelling of a request path, pure and I/O-free.

A proxy asks about the path the client sent; the app then routes the path the proxy forwards,
which may be decoded, cleaned or re-encoded on the way (nginx with a URI in ``proxy_pass``
decodes every escape and resolves dot segments). Rules therefore match a canonical form that
merges at least what those hops merge, and the forms they could split differently are refused.

**The canonical path** (built as Traefik v3.6 builds its routing path, RFC 3986 §6.2.2):

1. The query (from the first ``?``) and a fragment (from the first ``#``) are not part of it.
2. Every segment is percent-decoded once, octet by octet, and written back in one spelling:
   the unreserved characters (``A-Z a-z 0-9 - . _ ~``), the sub-delimiters except ``;``
   (``! $ & ' ( ) * + , =``), ``:`` and ``@`` as themselves; every other octet — UTF-8 of
   non-ASCII text included — as an escape with upper-case hex. Traefik decodes only the
   unreserved escapes; decoding the sub-delimiters, ``:`` and ``@`` too merges what every app
   framework (and nginx's ``proxy_pass http://app/;``, measured) merges: ``/a%2Bb`` and
   ``/a+b`` reach the same handler, so they must meet the same rule.
3. **Opaque escapes** — ``%2F`` (/), ``%5C`` (\\), ``%00``, ``%3B`` (;), ``%25`` (%), ``%3F`` (?),
   ``%23`` (#) — are never decoded: they stay (upper-cased) inside their segment, so an
   allowed ``/files/a%2Fb`` is one segment and never a separator.
4. ``.`` and ``..`` segments are removed (after decoding: ``%2e%2E`` is ``..``), empty segments
   (``//``) dropped, a trailing slash kept; ``..`` never climbs above the root.

**Forms refused unless the matched rule allows them** (each a bit of ``forms``): the seven
opaque escapes, a raw ``\\`` and a raw ``;`` (a path parameter, which Tomcat and Spring strip:
``/public/..;/admin`` is ``/admin`` there). Never allowable: a fragment — anywhere in the
request target, which no HTTP client sends (RFC 9112 §3.2.1) — and malformed text (``%`` not
followed by two hex digits, a raw control character).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

# Each ambiguous form, one bit: what ``canonical_path`` found, what a rule allows.
ENCODED_SLASH = 1 << 0
ENCODED_BACKSLASH = 1 << 1
ENCODED_NULL = 1 << 2
ENCODED_SEMICOLON = 1 << 3
ENCODED_PERCENT = 1 << 4
ENCODED_QUESTION_MARK = 1 << 5
ENCODED_HASH = 1 << 6
BACKSLASH = 1 << 7
SEMICOLON = 1 << 8
FRAGMENT = 1 << 9  # never allowable
MALFORMED = 1 << 10  # never allowable

# The rules-file key that allows each allowable form (Traefik's ``allowEncoded…`` names).
ALLOWANCES: Mapping[str, int] = {
    "allow_encoded_slash": ENCODED_SLASH,
    "allow_encoded_backslash": ENCODED_BACKSLASH,
    "allow_encoded_null_character": ENCODED_NULL,
    "allow_encoded_semicolon": ENCODED_SEMICOLON,
    "allow_encoded_percent": ENCODED_PERCENT,
    "allow_encoded_question_mark": ENCODED_QUESTION_MARK,
    "allow_encoded_hash": ENCODED_HASH,
    "allow_backslash": BACKSLASH,
    "allow_semicolon": SEMICOLON,
}

# How a refusal names each form to the caller.
FORM_NAMES: Mapping[int, str] = {
    ENCODED_SLASH: "an encoded slash (%2F)",
    ENCODED_BACKSLASH: "an encoded backslash (%5C)",
    ENCODED_NULL: "an encoded NUL (%00)",
    ENCODED_SEMICOLON: "an encoded semicolon (%3B)",
    ENCODED_PERCENT: "an encoded percent sign (%25)",
    ENCODED_QUESTION_MARK: "an encoded question mark (%3F)",
    ENCODED_HASH: "an encoded hash (%23)",
    BACKSLASH: "a backslash",
    SEMICOLON: "a semicolon (path parameter)",
    FRAGMENT: "a fragment (#)",
    MALFORMED: "a malformed escape or control character",
}

_OPAQUE: Mapping[int, int] = {
    0x2F: ENCODED_SLASH,
    0x5C: ENCODED_BACKSLASH,
    0x00: ENCODED_NULL,
    0x3B: ENCODED_SEMICOLON,
    0x25: ENCODED_PERCENT,
    0x3F: ENCODED_QUESTION_MARK,
    0x23: ENCODED_HASH,
}
_UNRESERVED = (string.ascii_letters + string.digits + "-._~").encode()
_SAFE = frozenset(_UNRESERVED + b"!$&'()*+,=:@")  # unreserved, sub-delims but ";", ":", "@"
_HEX = frozenset(b"0123456789abcdefABCDEF")
# The one spelling of each octet: itself when safe, else its escape.
_SPELLING = tuple(chr(b) if b in _SAFE else f"%{b:02X}" for b in range(256))
_SAFE_TEXT = r"[A-Za-z0-9\-._~!$&'()*+,=:@]"
_SEGMENT = re.compile(_SAFE_TEXT + "*").fullmatch  # a segment already spelled canonically
# A whole path already canonical: "/" first, no empty, "." or ".." segment, nothing to spell.
_CANONICAL = re.compile(rf"(?=/)(?:/(?!\.\.?(?:/|\Z)){_SAFE_TEXT}+)*/?").fullmatch


def _spell(segment: str) -> tuple[str, int]:
    """``segment`` decoded once and written in the canonical spelling, with the forms found."""
    forms = 0
    try:
        data = segment.encode("utf-8", "surrogateescape")  # undoes aiohttp's decoding of bytes
    except UnicodeEncodeError:  # a lone surrogate no byte stream can carry
        data, forms = segment.encode("utf-8", "surrogatepass"), MALFORMED
    out: list[str] = []
    i, end = 0, len(data)
    while i < end:
        octet = data[i]
        if octet == 0x25:  # %
            if i + 2 < end and data[i + 1] in _HEX and data[i + 2] in _HEX:
                octet = int(data[i + 1 : i + 3], 16)
                i += 3
                opaque = _OPAQUE.get(octet)
                if opaque is not None:
                    forms |= opaque
                    out.append(_SPELLING[octet])  # stays an escape: never a separator
                    continue
            else:
                forms |= MALFORMED
                i += 1
        else:
            i += 1
            if octet == 0x3B:  # a raw ";": kept as it is, a path parameter to refuse
                forms |= SEMICOLON
                out.append(";")
                continue
            if octet == 0x5C:
                forms |= BACKSLASH
            elif octet < 0x20 or octet == 0x7F:
                forms |= MALFORMED
        out.append(_SPELLING[octet])
    return "".join(out), forms


def canonical_path(target: str) -> tuple[str, int]:
    """The canonical form of the path of ``target`` — a request target's path, with or
    without its query — and the forms found in it (a ``#`` anywhere is a fragment)."""
    raw, _, query = target.partition("?")
    forms = FRAGMENT if "#" in query else 0
    if _CANONICAL(raw):
        return raw, forms  # the common case: one regex call (decisions on new URIs pay it)
    cut = raw.find("#")
    if cut >= 0:
        forms |= FRAGMENT
        raw = raw[:cut]
    out: list[str] = []
    segment = ""
    for segment in raw.split("/"):
        if not _SEGMENT(segment):
            segment, found = _spell(segment)
            forms |= found
        if segment in {"", "."}:
            continue
        if segment == "..":
            if out:
                out.pop()
            continue
        out.append(segment)
    path = "/" + "/".join(out)
    return (path + "/" if out and segment in {"", ".", ".."} else path), forms


def describe(forms: int) -> str:
    """The forms in ``forms``, for a refusal's reason."""
    return ", ".join(name for bit, name in FORM_NAMES.items() if forms & bit)


def canonical_glob(pattern: str) -> tuple[str, int]:
    """A rule's path glob in the canonical spelling (``/café/**`` → ``/caf%C3%A9/**``), with the
    forms its literal text holds. ``*`` and ``?`` stay glob syntax."""
    forms = 0
    out: list[str] = []
    for literal in re.split(r"([*?]+)", pattern):
        if not literal or literal[0] in "*?":
            out.append(literal)
            continue
        pieces: list[str] = []
        for piece in literal.split("/"):
            spelled, found = _spell(piece)
            forms |= found
            pieces.append(spelled)
        out.append("/".join(pieces))
    return "".join(out), forms
