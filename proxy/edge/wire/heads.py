"""The bytes of heads: the header policy of ``edge/headers.py`` on raw ``(name, value)`` pairs.

Pure functions over bytes, no I/O. The data path parses heads with llhttp into lists of byte
pairs in arrival order and writes heads as one ``bytes``; converting to a ``CIMultiDict`` and
back would cost more than the rest of a pass-through request. The policy is the same as
``edge/headers.py`` (and tested against it): hop-by-hop headers and those named in
``Connection`` dropped both ways, client-sent forwarding headers and ``Expect`` dropped,
``X-Forwarded-For/-Proto/-Host``, ``True-Client-IP`` and ``X-Request-ID`` appended, every other
header kept byte for byte and in order (``Set-Cookie`` above all).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from proxy.kernel.errors import KratosHooksError, render

Pairs = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
FORWARDING = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"true-client-ip",
        b"x-request-id",
    }
)
# Expect is answered by the listener itself; Kratos gets the body without waiting for a 100.
REQUEST_DROP = HOP_BY_HOP | FORWARDING | {b"expect"}
# What a hooked route's own reply or a forwarded hooked body re-frames itself.
FRAMING = frozenset({b"content-length", b"transfer-encoding"})
# ``Connection`` tokens that name no header: nothing more to drop for them.
_PLAIN_TOKENS = frozenset({b"keep-alive", b"close", b"upgrade", b""})

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where and how requests go upstream (from ``KRATOS_PUBLIC_URL`` and the proxy settings)."""

    base_path: bytes  # the public URL's path without a trailing ``/``, prepended to targets
    authority: bytes  # the public URL's host[:port]
    preserve_host: bool  # send the client's Host (else ``authority``)


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent a request, as the trusted-proxy logic decided (``kernel/client_ip``)."""

    ip: bytes  # the client's address
    peer: bytes  # the socket peer (IPv4-mapped folded)
    trusted: bool  # the peer is a trusted proxy: its forwarding headers are believed


def request_head(
    method: bytes,
    target: bytes,
    headers: Pairs,
    origin: Origin,
    client: Client,
    request_id: bytes,
    *,
    chunked: bool = False,
    length: int | None = None,
    drop: frozenset[bytes] = frozenset(),
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> bytes:
    """The upstream request head for a client request.

    ``target`` is the prefix-free raw target, sent after the origin's base path unchanged.
    ``chunked`` adds ``Transfer-Encoding: chunked`` (the body is re-chunked as it streams);
    ``length`` replaces the client's framing with a ``Content-Length`` (a buffered body).
    ``drop`` removes more headers (lower-cased names) and ``extra`` adds some before the
    forwarding set (``fetch``'s ``Accept``).
    """
    skip = REQUEST_DROP | drop if drop else REQUEST_DROP
    if length is not None:
        skip = skip | FRAMING
    parts = [method, b" ", origin.base_path, target, b" HTTP/1.1\r\n"]
    seen = _copy(parts, headers, skip, origin)
    if seen.tokens:
        # Rare: ``Connection`` names more headers hop-by-hop (perhaps ones before it).
        parts = parts[:5]
        seen = _copy(parts, headers, skip | seen.tokens, origin)
    if length is not None:
        parts.append(b"Content-Length: %d\r\n" % length)
    elif chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    for name, value in extra:
        parts += (name, b": ", value, b"\r\n")
    _forwarding(parts, seen, client, request_id)
    return b"".join(parts)


@dataclass(slots=True)
class _Seen:
    """What the forwarding headers are made from."""

    host: bytes | None = None
    forwarded_for: list[bytes] | None = None
    proto: bytes | None = None
    forwarded_host: bytes | None = None
    tokens: frozenset[bytes] = frozenset()  # headers ``Connection`` names, not yet dropped


def _copy(parts: list[bytes], headers: Pairs, skip: frozenset[bytes], origin: Origin) -> _Seen:
    """Append the end-to-end headers; note the client's Host and forwarding headers."""
    seen = _Seen(forwarded_for=[])
    host_written = False
    for name, value in headers:
        lname = name.lower()
        if lname in skip:
            if lname in FORWARDING:
                _note(seen, lname, value)
            elif lname == b"connection":
                _tokens(seen, value, skip)
            continue
        if lname == b"host":
            if seen.host is None:
                seen.host = value
            elif not origin.preserve_host:
                continue  # as ``out["Host"] = …`` does: one Host, in the first one's place
            if not origin.preserve_host:
                value = origin.authority
            host_written = True
        parts += (name, b": ", value, b"\r\n")
    if not host_written and not origin.preserve_host:
        parts += (b"Host: ", origin.authority, b"\r\n")
    return seen


def _tokens(seen: _Seen, value: bytes, skip: frozenset[bytes]) -> None:
    tokens = frozenset(t.strip().lower() for t in value.split(b",")) - _PLAIN_TOKENS - skip
    if tokens:
        seen.tokens = seen.tokens | tokens


def _note(seen: _Seen, lname: bytes, value: bytes) -> None:
    if lname == b"x-forwarded-for":
        assert seen.forwarded_for is not None
        seen.forwarded_for.append(value)
    elif lname == b"x-forwarded-proto" and seen.proto is None:
        seen.proto = value
    elif lname == b"x-forwarded-host" and seen.forwarded_host is None:
        seen.forwarded_host = value


def _forwarding(parts: list[bytes], seen: _Seen, client: Client, request_id: bytes) -> None:
    """The forwarding set; a client that is not a trusted proxy chooses none of it."""
    chain = b", ".join(seen.forwarded_for or ()).strip() if client.trusted else b""
    parts += (b"X-Forwarded-For: ", chain + b", " + client.peer if chain else client.peer)
    proto = seen.proto if client.trusted and seen.proto else b"http"
    parts += (b"\r\nX-Forwarded-Proto: ", proto)
    shown_host = (seen.forwarded_host if client.trusted else None) or seen.host
    if shown_host:
        parts += (b"\r\nX-Forwarded-Host: ", shown_host)
    parts += (b"\r\nTrue-Client-IP: ", client.ip, b"\r\nX-Request-ID: ", request_id, b"\r\n\r\n")


@dataclass(slots=True)
class ResponseHead:
    """An upstream answer's head as the client gets it, and how its body is framed."""

    head: bytes  # the status line and headers, without the blank line's closing CRLF pair
    length: bytes | None  # the Content-Length value passed on
    chunked: bool  # the body must be re-chunked (no length, HTTP/1.1 client)
    close_delimited: bool  # the body ends when the connection closes (HTTP/1.0 client)


_STATUS_LINES: dict[tuple[int, bytes], bytes] = {}


def status_line(status: int, reason: bytes) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``, cached for the few pairs a service sees."""
    line = _STATUS_LINES.get((status, reason))
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_STATUS_LINES) < 512:
            _STATUS_LINES[(status, reason)] = line
    return line


def reason_of(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def response_head(
    status: int,
    reason: bytes,
    headers: Pairs,
    request_id: bytes,
    *,
    head_only: bool,
    http10: bool,
) -> ResponseHead:
    """The client-side head of an upstream answer (hop-by-hop removed, ``X-Request-ID`` added
    when Kratos sent none) and its framing: a ``Content-Length`` is kept; an answer without
    one is re-chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones. The caller
    appends ``Connection`` and the final CRLF."""
    parts = [status_line(status, reason)]
    length, has_rid, tokens = _copy_response(parts, headers, HOP_BY_HOP)
    if tokens:  # rare: ``Connection`` names more headers hop-by-hop
        parts = parts[:1]
        length, has_rid, _ = _copy_response(parts, headers, HOP_BY_HOP | tokens)
    if not has_rid:
        parts += (b"X-Request-ID: ", request_id, b"\r\n")
    bodyless = head_only or status in (204, 304) or status < 200
    chunked = close_delimited = False
    if not bodyless and length is None:
        if http10:
            close_delimited = True
        else:
            chunked = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
    return ResponseHead(b"".join(parts), length, chunked, close_delimited)


def _copy_response(
    parts: list[bytes], headers: Pairs, skip: frozenset[bytes]
) -> tuple[bytes | None, bool, frozenset[bytes]]:
    """Append an answer's end-to-end headers: (its length, whether it has an
    ``X-Request-ID``, the headers ``Connection`` names that were not dropped)."""
    length: bytes | None = None
    has_rid = False
    tokens: frozenset[bytes] = frozenset()
    for name, value in headers:
        lname = name.lower()
        if lname in skip:
            if lname == b"connection":
                named = frozenset(t.strip().lower() for t in value.split(b",")) - _PLAIN_TOKENS
                tokens = tokens | (named - skip)
            continue
        if lname == b"content-length":
            length = value
        elif lname == b"x-request-id":
            has_rid = True
        parts += (name, b": ", value, b"\r\n")
    return length, has_rid, tokens


def own_head(
    status: int,
    headers: Iterable[tuple[str, str]],
    body_length: int,
    request_id: bytes,
) -> bytes:
    """The head of a reply of the service's own: its headers (framing and hop-by-hop ones
    replaced by ours), ``Content-Length`` and ``X-Request-ID``. Without ``Connection`` and
    the final CRLF, like ``response_head``."""
    parts = [status_line(status, reason_of(status))]
    has_rid = False
    for name, value in headers:
        bname = name.encode("utf-8", "surrogateescape")
        lname = bname.lower()
        if lname in HOP_BY_HOP or lname in FRAMING:
            continue
        if lname == b"x-request-id":
            has_rid = True
        parts += (bname, b": ", value.encode("utf-8", "surrogateescape"), b"\r\n")
    if not has_rid:
        parts += (b"X-Request-ID: ", request_id, b"\r\n")
    if status not in (204, 304) and status >= 200:
        parts.append(b"Content-Length: %d\r\n" % body_length)
    return b"".join(parts)


def connection_end(keep_alive: bool, http10: bool) -> bytes:
    """The head's last line(s): what the client may do with the connection next."""
    if not keep_alive:
        return b"Connection: close\r\n\r\n"
    return b"Connection: keep-alive\r\n\r\n" if http10 else b"\r\n"


def error_reply(exc: KratosHooksError, request_id: bytes, *, keep_alive: bool = False) -> bytes:
    """A whole answer in Kratos' error shape (``kernel/errors.render``)."""
    body = render(exc, request_id.decode("latin-1"))
    headers = [("Content-Type", "application/json"), *exc.headers.items()]
    head = own_head(exc.status, headers, len(body), request_id)
    return head + connection_end(keep_alive, False) + body


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never the empty, final one)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
