"""The header policy on bytes says what ``edge/headers.py`` says on multidicts."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from proxy.edge.headers import downstream_response_headers, upstream_request_headers
from proxy.edge.wire.heads import Client, Origin, own_head, request_head, response_head

CASES = [
    [("Host", "a.example"), ("Cookie", "a=1"), ("Cookie", "b=2"), ("X-Custom", "yes")],
    [("Host", "h"), ("Connection", "close, X-Private"), ("X-Private", "1"), ("TE", "trailers")],
    [("Host", "h"), ("X-Forwarded-For", "6.6.6.6"), ("True-Client-IP", "6.6.6.6")],
    [("Host", "h"), ("X-Forwarded-For", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-For", "3.3.3.3")],
    [("Host", "h"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "public.example")],
    [("Host", "h"), ("Expect", "100-continue"), ("Content-Length", "5"), ("Keep-Alive", "5")],
    [("Cookie", "x=1"), ("Proxy-Authorization", "Basic Zm9v"), ("Upgrade", "websocket")],
]


def parse(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [tuple(line.split(": ", 1)) for line in lines if line]  # type: ignore[misc]


@pytest.mark.parametrize("headers", CASES)
@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("preserve", [False, True])
def test_request_head_matches_the_multidict_policy(
    headers: list[tuple[str, str]], trusted: bool, preserve: bool
) -> None:
    expected = upstream_request_headers(
        CIMultiDict(headers),
        client_ip="203.0.113.9",
        peer_ip="127.0.0.1",
        trusted_peer=trusted,
        scheme="http",
        request_id="rid-1",
        upstream_host=None if preserve else "kratos:4433",
    )
    head = request_head(
        b"GET",
        b"/a/%2F?x=1",
        [(n.encode(), v.encode()) for n, v in headers],
        Origin(b"/base", b"kratos:4433", preserve),
        Client(b"203.0.113.9", b"127.0.0.1", trusted),
        b"rid-1",
    )
    assert head.startswith(b"GET /base/a/%2F?x=1 HTTP/1.1\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert sorted(parse(head)) == sorted(expected.items())


@pytest.mark.parametrize("headers", CASES)
def test_response_head_matches_the_multidict_policy(headers: list[tuple[str, str]]) -> None:
    expected = downstream_response_headers(CIMultiDict(headers))
    got = response_head(
        200,
        b"OK",
        [(n.encode(), v.encode()) for n, v in headers],
        b"r",
        head_only=False,
        http10=False,
    )
    seen = [
        (n, v)
        for n, v in parse(got.head + b"\r\n")
        if n not in ("X-Request-ID", "Transfer-Encoding")
    ]
    assert seen == list(expected.items())


def test_set_cookies_keep_their_order_and_a_length_is_kept() -> None:
    got = response_head(
        200,
        b"OK",
        [(b"Set-Cookie", b"a=1"), (b"Content-Length", b"2"), (b"Set-Cookie", b"b=2")],
        b"r",
        head_only=False,
        http10=False,
    )
    assert [v for n, v in parse(got.head) if n == "Set-Cookie"] == ["a=1", "b=2"]
    assert got.length == b"2" and not got.chunked


def test_buffered_body_replaces_the_clients_framing() -> None:
    head = request_head(
        b"POST",
        b"/self-service/login",
        [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"9")],
        Origin(b"", b"k", True),
        Client(b"1.2.3.4", b"1.2.3.4", False),
        b"r",
        length=3,
    )
    names = [n.lower() for n, _ in parse(head)]
    assert names.count("content-length") == 1 and "transfer-encoding" not in names
    assert ("Content-Length", "3") in parse(head)


def test_own_reply_frames_itself() -> None:
    head = own_head(429, [("Content-Length", "99"), ("Retry-After", "3")], 10, b"rid")
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert parse(head) == [("Retry-After", "3"), ("X-Request-ID", "rid"), ("Content-Length", "10")]
