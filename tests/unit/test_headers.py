"""Header policy of the edge proxy."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.edge.headers import (
    downstream_response_headers,
    end_to_end,
    forwarded_for,
    upstream_request_headers,
)


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    incoming = headers(
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("TE", "trailers"),
        ("Upgrade", "h2c"),
        ("Proxy-Authorization", "Basic abc"),
        ("X-Secret-Hop", "1"),
        ("Accept", "application/json"),
    )
    assert list(end_to_end(incoming).items()) == [("Accept", "application/json")]


def test_repeated_headers_survive_in_order() -> None:
    upstream = headers(
        ("Set-Cookie", "csrf_token_x=a; Path=/"),
        ("Content-Type", "application/json"),
        ("Set-Cookie", "ory_kratos_session=b; Path=/; HttpOnly"),
    )
    out = downstream_response_headers(upstream)
    assert out.getall("Set-Cookie") == [
        "csrf_token_x=a; Path=/",
        "ory_kratos_session=b; Path=/; HttpOnly",
    ]


def test_forwarded_for_appends_only_for_trusted_peers() -> None:
    assert forwarded_for("1.2.3.4", "10.0.0.1", trusted_peer=True) == "1.2.3.4, 10.0.0.1"
    assert forwarded_for("1.2.3.4", "198.51.100.1", trusted_peer=False) == "198.51.100.1"
    assert forwarded_for(None, "10.0.0.1", trusted_peer=True) == "10.0.0.1"


def build(incoming: CIMultiDictProxy[str], *, trusted: bool) -> CIMultiDict[str]:
    return upstream_request_headers(
        incoming,
        client_ip="203.0.113.7",
        peer_ip="10.0.0.1" if trusted else "203.0.113.7",
        trusted_peer=trusted,
        scheme="http",
        request_id="rid-1",
        upstream_host=None,
    )


def test_untrusted_client_cannot_set_forwarding_headers() -> None:
    incoming = headers(
        ("Host", "auth.example.com"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("True-Client-IP", "6.6.6.6"),
        ("Cookie", "a=b"),
    )
    out = build(incoming, trusted=False)
    assert out["X-Forwarded-For"] == "203.0.113.7"
    assert out["X-Forwarded-Proto"] == "http"
    assert out["X-Forwarded-Host"] == "auth.example.com"
    assert out["True-Client-IP"] == "203.0.113.7"
    assert out.getall("X-Forwarded-For") == ["203.0.113.7"]
    assert out["Cookie"] == "a=b"
    assert out["Host"] == "auth.example.com"


def test_trusted_proxy_forwarding_headers_are_kept() -> None:
    incoming = headers(
        ("Host", "kratos-hooks:8080"),
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "auth.example.com"),
    )
    out = build(incoming, trusted=True)
    assert out["X-Forwarded-For"] == "203.0.113.7, 10.0.0.1"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "auth.example.com"


def test_nothing_added_beyond_the_forwarding_set() -> None:
    out = build(headers(("Host", "h"), ("Expect", "100-continue")), trusted=False)
    assert sorted(out) == sorted(
        [
            "Host",
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "True-Client-IP",
            "X-Request-ID",
        ]
    )


def test_upstream_host_replaces_host_when_not_preserved() -> None:
    out = upstream_request_headers(
        headers(("Host", "auth.example.com")),
        client_ip="1.1.1.1",
        peer_ip="1.1.1.1",
        trusted_peer=False,
        scheme="https",
        request_id="r",
        upstream_host="kratos:4433",
    )
    assert out["Host"] == "kratos:4433"
    assert out["X-Forwarded-Host"] == "auth.example.com"
