"""The request as Kratos reads it: its path, its query and its flow id. Pure functions.

Kratos is a Go ``net/http`` server: the request-target is parsed by ``url.ParseRequestURI``,
whose ``URL.Path`` has every percent-escape decoded (``%2F`` included); Kratos' clean-path
middleware then applies ``httprouter.CleanPath`` to that decoded path, and its router
(julienschmidt/httprouter) serves the cleaned path in place, or redirects a case or
trailing-slash variant to the registered path. ``?flow=`` is read with ``url.ParseQuery`` and
parsed with gofrs/uuid's ``FromString``. The functions here answer the same, so the guard
judges exactly the request Kratos acts on; the parity suite (``tests/parity``) compares them
with those Go packages.

Strings hold the request's text; bytes that are not UTF-8 travel as lone surrogates
(``surrogateescape``), so a decoded ``%FF`` is ``"\\udcff"`` and nothing is lost.
"""

from __future__ import annotations

import re

from proxy.kernel.mediatype import go_lower

_HEX = frozenset("0123456789abcdefABCDEF")

# url.ParseRequestURI refuses any ASCII control byte in the target.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A "%" not followed by two hex digits: url.ParseRequestURI refuses the path.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# What a scheme is made of (RFC 3986 section 3.1), as url.getScheme scans it.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# A host[:port] this module accepts in an absolute-form target: registered names, IPv4, and
# bracketed IPv6. Go accepts a little more (percent-escaped hosts, zones); refusing those
# only refuses requests no Kratos client sends.
_AUTHORITY = re.compile(
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:%]*@)?"
    r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]*|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]*)?"
)


def request_path(target: str) -> tuple[str, str] | None:
    """``(raw path, raw query)`` of a request-target, split as Go's server splits it, or
    None where Go answers 400.

    Origin form (``/a?b``), absolute form with any scheme (``http://host/a?b``, and
    ``x:/a``, which Go also reads as path ``/a``) and ``*``. A ``#`` is part of the path, as
    for Go (a request-target has no fragment). The path is still percent-encoded: hand it
    to :func:`canonical_path`.
    """
    if not target or _CONTROL.search(target):
        return None
    if target == "*":
        return "*", ""
    rest = target
    scheme = _SCHEME.match(target)
    has_scheme = scheme is not None and target[scheme.end() : scheme.end() + 1] == ":"
    if target.startswith(":"):
        return None  # Go: "missing protocol scheme"
    if has_scheme:
        assert scheme is not None
        rest = target[scheme.end() + 1 :]
    if rest.endswith("?") and rest.count("?") == 1:
        rest, query = rest[:-1], ""
    else:
        rest, _, query = rest.partition("?")
    if not rest.startswith("/"):
        # An opaque URI (``mailto:x``) routes as the empty path; anything else is refused.
        return ("", query) if has_scheme else None
    if has_scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if not _AUTHORITY.fullmatch(authority):
            return None
        rest = slash + path
    if "%" in rest and _BAD_ESCAPE.search(rest):
        return None
    return rest, query


def _unescape(text: str, *, plus: bool) -> str | None:
    """Go's ``url.unescape``: ``%XX`` to a byte (``+`` to a space in a query), None on a
    malformed escape."""
    if "%" not in text and not (plus and "+" in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x25:  # '%'
            pair = raw[i + 1 : i + 3]
            if len(pair) < 2 or not _HEX.issuperset(pair.decode("latin-1")):
                return None
            out.append(int(pair, 16))
            i += 3
        elif byte == 0x2B and plus:  # '+'
            out.append(0x20)
            i += 1
        else:
            out.append(byte)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def clean_path(path: str) -> str:
    """``httprouter.CleanPath``: one leading slash, no empty, ``.`` or ``..`` segments, and
    a trailing slash kept where there was one or where the path ended in ``.`` (not after
    a final ``..``: ``/a/b/..`` is ``/a``)."""
    if path == "":
        return "/"
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path  # already clean: the common case
    segments: list[str] = []
    parts = path.split("/")
    trailing = len(path) > 1 and path.endswith("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part in ("", "."):
            trailing = trailing or (part == "." and last)
        elif part == "..":
            if segments:
                segments.pop()
        else:
            segments.append(part)
    cleaned = "/" + "/".join(segments)
    if trailing and segments:
        cleaned += "/"
    return cleaned


def canonical_path(raw_path: str) -> str | None:
    """The path Kratos' router acts on, for a raw (still percent-encoded) request path:
    every escape decoded, ``%2F`` and ``%2E`` included (Go's ``URL.Path``), then
    ``httprouter.CleanPath`` (Kratos' clean-path middleware). None where Go refuses the
    path (a malformed escape, a control character): Kratos answers 400 without routing.

    A trailing slash survives, as it does in Kratos, where it earns a redirect rather than
    the handler; :func:`route_key` folds it for lookups.
    """
    if _CONTROL.search(raw_path):
        return None
    decoded = _unescape(raw_path, plus=False)
    if decoded is None:
        return None
    return clean_path(decoded)


def route_key(path: str) -> str:
    """The key hooked-route lookups use for a canonical path: lower-cased as Go lower-cases
    runes, and without a trailing slash. Kratos' router redirects such variants to the
    registered path (the client's follow-up comes back on it), so merging them here only
    ever guards a request Kratos would have turned away; failing to merge one that Kratos
    serves would be a bypass."""
    key = go_lower(path)
    if len(key) > 1 and key.endswith("/"):
        key = key[:-1]
    return key


def parse_query(raw_query: str) -> dict[str, list[str]]:
    """``url.ParseQuery`` with its error ignored, as ``r.URL.Query()`` is: pairs split on
    ``&``; a pair holding ``;`` or a malformed escape is dropped, the others kept in order;
    ``+`` is a space."""
    values: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if not pair or ";" in pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = _unescape(raw_key, plus=True)
        value = _unescape(raw_value, plus=True)
        if key is None or value is None:
            continue
        values.setdefault(key, []).append(value)
    return values


def query_get(raw_query: str, name: str) -> str:
    """``r.URL.Query().Get(name)``: the first value of ``name``, ``""`` when absent."""
    if "%" not in raw_query and "+" not in raw_query and ";" not in raw_query:
        # Fast path: nothing to unescape or drop (the usual ``flow=<uuid>``).
        for pair in raw_query.split("&"):
            key, _, value = pair.partition("=")
            if pair and key == name:
                return value
        return ""
    found = parse_query(raw_query).get(name)
    return found[0] if found else ""


_URN = "urn:uuid:"


def canonical_uuid(value: str) -> str | None:
    """gofrs/uuid ``FromString``: the canonical lower-case form of a UUID written as
    ``6ba7b810-9dad-11d1-80b4-00c04fd430c8`` (any hex case), 32 bare hex digits, either of
    those in ``{}`` or after ``urn:uuid:``; None for anything else (Kratos refuses it).

    The ``urn:uuid:`` prefix is also accepted in upper case, which gofrs 4.x refuses: an
    extra accepted spelling only merges keys.
    """
    n = len(value)
    if n in (41, 45) and value[:9].lower() == _URN:
        body = value[9:]
    elif n in (34, 38) and value[0] == "{" and value[-1] == "}":
        body = value[1:-1]
    else:
        body = value
    if len(body) == 36:
        if body[8] != "-" or body[13] != "-" or body[18] != "-" or body[23] != "-":
            return None
        digits = body[:8] + body[9:13] + body[14:18] + body[19:23] + body[24:]
    elif len(body) == 32:
        digits = body
    else:
        return None
    if not _HEX.issuperset(digits):
        return None
    d = digits.lower()
    return f"{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:]}"
