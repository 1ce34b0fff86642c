"""The body decoder Kratos picks from a ``Content-Type``: Go's ``mime.ParseMediaType`` as
ory/x ``decoderx`` uses it. Pure functions.

Go lower-cases a media type with ``strings.ToLower``, rune by rune with the *simple* case
mapping: ``applİcation/json`` (U+0130) is ``application/json`` to Kratos, which then parses
the body as JSON. Python's ``str.lower`` applies the full mapping (``İ`` → ``i̇``, two code
points) and would see an unknown type. :func:`go_lower` is Go's; :func:`media_type` is what
decoderx acts on, or None where Kratos refuses the body unread (or where its releases
disagree, see there), so a caller can refuse such a submission rather than forward it
unjudged.
"""

from __future__ import annotations

from functools import lru_cache

_TSPECIALS = frozenset('()<>@,;:\\"/[]?=')

# unicode.IsSpace: what strings.TrimSpace and TrimLeftFunc(unicode.IsSpace) remove.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)


@lru_cache(maxsize=4096)
def _lower_rune(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # a byte that was not UTF-8: strings.Map writes U+FFFD for it
    if char == "\u0130":
        return "i"  # the one rune whose full lower-case mapping differs from the simple one
    lowered = char.lower()
    return lowered if len(lowered) == 1 else char


def go_lower(text: str) -> str:
    """Go's ``strings.ToLower``: each rune mapped by ``unicode.ToLower``, the simple case
    mapping (``İ`` → ``i``, KELVIN SIGN → ``k``, capital sigma → small, never final)."""
    if text.isascii():
        return text.lower()
    return "".join([_lower_rune(c) for c in text])


def _is_token_char(char: str) -> bool:
    return " " < char < "\x7f" and char not in _TSPECIALS


def _token(text: str) -> tuple[str, str]:
    """``consumeToken``: the leading run of token characters and the rest."""
    i = 0
    while i < len(text) and _is_token_char(text[i]):
        i += 1
    return text[:i], text[i:]


def _value(text: str) -> tuple[str, str] | None:
    """``consumeValue``: a token or a quoted string (None when malformed)."""
    if not text.startswith('"'):
        value, rest = _token(text)
        return (value, rest) if value else None
    out: list[str] = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return "".join(out), text[i + 1 :]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _TSPECIALS:
            out.append(text[i + 1])
            i += 2
            continue
        if char in "\r\n":
            return None
        out.append(char)
        i += 1
    return None  # no closing quote


def _param(text: str) -> tuple[str, str, str] | None:
    """``consumeMediaParam``: ``; key=value`` → (lower-cased key, value, rest)."""
    rest = text.lstrip(_GO_SPACE)
    if not rest.startswith(";"):
        return None
    key, rest = _token(rest[1:].lstrip(_GO_SPACE))
    if not key:
        return None
    rest = rest.lstrip(_GO_SPACE)
    if not rest.startswith("="):
        return None
    rest = rest[1:].lstrip(_GO_SPACE)
    parsed = _value(rest)
    if parsed is None:
        return None
    value, rest = parsed
    return key.lower(), value, rest


def _percent_unescape(text: str) -> str | None:
    """``percentHexUnescape``: ``%XX`` to a byte; None on a malformed escape."""
    if "%" not in text:
        return text
    raw = text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] != 0x25:
            out.append(raw[i])
            i += 1
            continue
        pair = raw[i + 1 : i + 3].decode("latin-1")
        if len(pair) < 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
            return None
        out.append(int(pair, 16))
        i += 3
    return out.decode("utf-8", "surrogateescape")


def _decode_2231(value: str) -> str | None:
    """``decode2231Enc``: ``charset'lang'percent-encoded`` in US-ASCII or UTF-8."""
    parts = value.split("'", 2)
    if len(parts) != 3 or go_lower(parts[0]) not in ("us-ascii", "utf-8"):
        return None
    return _percent_unescape(parts[2])


def _stitch(params: dict[str, str], pieces: dict[str, dict[str, str]]) -> None:
    """RFC 2231 continuations (``name*``, ``name*0``, ``name*1*``…) into ``params``."""
    for name, parts in pieces.items():
        if name + "*" in parts:
            decoded = _decode_2231(parts[name + "*"])
            if decoded is not None:
                params[name] = decoded
            continue
        out: list[str] = []
        n = 0
        while True:
            simple = f"{name}*{n}"
            if simple in parts:
                out.append(parts[simple])
            elif simple + "*" in parts:
                encoded = parts[simple + "*"]
                piece = _decode_2231(encoded) if n == 0 else _percent_unescape(encoded)
                out.append(piece or "")
            else:
                break
            n += 1
        if n:
            params[name] = "".join(out)


def parse_media_type(value: str) -> tuple[str, dict[str, str]] | None:
    """``mime.ParseMediaType``: the lower-cased type and its parameters (RFC 2231
    continuations stitched), None on any error (Kratos' decoder refuses the body then,
    ``ErrInvalidMediaParameter`` included)."""
    base, _, _ = value.partition(";")
    media = go_lower(base).strip(_GO_SPACE)
    kind, rest = _token(media)
    if not kind:
        return None
    if rest:
        if not rest.startswith("/"):
            return None
        subtype, rest = _token(rest[1:])
        if not subtype or rest:
            return None
    params: dict[str, str] = {}
    pieces: dict[str, dict[str, str]] = {}
    text = value[len(base) :]
    while text:
        text = text.lstrip(_GO_SPACE)
        if not text:
            break
        parsed = _param(text)
        if parsed is None:
            if text.strip(_GO_SPACE) == ";":
                break  # a trailing semicolon is ignored
            return None
        key, val, text = parsed
        name, star, _ = key.partition("*")
        target = pieces.setdefault(name, {}) if star else params
        if key in target:
            return None  # "mime: duplicate parameter name"
        target[key] = val
    _stitch(params, pieces)
    return media, params


_DECODED = frozenset(
    {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
)


def media_type(content_type: str | None) -> str | None:
    """The media type Kratos' body decoder acts on: ``application/json``,
    ``application/x-www-form-urlencoded`` or ``multipart/form-data`` when it decodes the
    body so, another type when it would refuse it, None when it refuses it without looking
    at a type (no header, or one ``mime.ParseMediaType`` rejects).

    A value holding a comma is None as well: decoderx used to read such a header as a list
    (``text/plain, application/json`` was JSON) and now rejects it; no client sends one.
    """
    if not content_type:
        return None  # decoderx: no Content-Type is application/octet-stream, refused
    if "," in content_type:
        return None
    if content_type.isascii():
        # The common case: Go's lower-casing is ASCII's here.
        head = content_type.partition(";")[0].strip(_GO_SPACE).lower()
        if head in _DECODED and ";" not in content_type:
            return head
    parsed = parse_media_type(content_type.strip(_GO_SPACE))
    return parsed[0] if parsed is not None else None
