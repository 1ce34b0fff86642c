"""Header policy for the edge proxy: pure functions, no I/O.

Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy ones every proxy still drops) describe
one connection, so they are removed in both directions together with every header the
``Connection`` header names. Everything else is copied with ``add()`` so repeated headers —
``Set-Cookie`` above all — survive in order.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)

# Set by the proxy from what it knows, never copied from an untrusted client.
FORWARDING = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "true-client-ip", "x-request-id"}
)

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


def connection_tokens(headers: Headers) -> frozenset[str]:
    """The header names a ``Connection`` header declares hop-by-hop."""
    tokens: set[str] = set()
    for value in headers.getall("Connection", ()):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def end_to_end(headers: Headers, *, drop: Iterable[str] = ()) -> CIMultiDict[str]:
    """A copy of ``headers`` without hop-by-hop ones (and without ``drop``), order kept."""
    skip = HOP_BY_HOP | connection_tokens(headers) | {d.lower() for d in drop}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in skip:
            out.add(name, value)
    return out


def forwarded_for(existing: str | None, peer: str, *, trusted_peer: bool) -> str:
    """The ``X-Forwarded-For`` to send: append the peer to a trusted chain, else start anew."""
    if trusted_peer and existing and existing.strip():
        return f"{existing.strip()}, {peer}"
    return peer


def upstream_request_headers(
    incoming: Headers,
    *,
    client_ip: str,
    peer_ip: str,
    trusted_peer: bool,
    scheme: str,
    request_id: str,
    upstream_host: str | None,
) -> CIMultiDict[str]:
    """Headers for the request to Kratos.

    Nothing is added that the client did not send except the forwarding set; a client that
    is not a trusted proxy cannot choose any of those values. ``upstream_host`` replaces the
    client's ``Host`` when the proxy is configured not to preserve it.
    """
    # Expect is answered by our own server; Kratos gets the body without waiting for a 100.
    out = end_to_end(incoming, drop=FORWARDING | {"expect"})
    host = incoming.get("Host", "")
    if upstream_host is not None:
        out["Host"] = upstream_host
    proto = incoming.get("X-Forwarded-Proto") if trusted_peer else None
    fwd_host = incoming.get("X-Forwarded-Host") if trusted_peer else None
    out["X-Forwarded-For"] = forwarded_for(
        ", ".join(incoming.getall("X-Forwarded-For", ())), peer_ip, trusted_peer=trusted_peer
    )
    out["X-Forwarded-Proto"] = proto or scheme
    if fwd_host or host:
        out["X-Forwarded-Host"] = fwd_host or host
    out["True-Client-IP"] = client_ip
    out["X-Request-ID"] = request_id
    return out


def downstream_response_headers(upstream: Headers) -> CIMultiDict[str]:
    """Headers for the client: Kratos' own, minus hop-by-hop."""
    return end_to_end(upstream)
