"""What request is being decided: read from the auth call, pure and I/O-free.

Proxies describe the original request in headers: Traefik, Caddy and registries send
``X-Forwarded-Method/Proto/Host/Uri``; nginx by convention ``X-Original-URI`` and
``X-Original-Method``; Oathkeeper-style callers put the path after ``/decisions``. Those
headers are believed only when the direct peer is a trusted proxy — anyone else could claim
to be asking about a public path while presenting a cookie for a protected one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from config.fields import IPNetwork
from proxy.client_ip import client_ip, is_trusted, parse_ip

REGISTRY_HEADERS = (
    "X-Registry-Action",
    "X-Registry-Namespace",
    "X-Registry-Reference",
    "X-Registry-Digest",
    "X-Registry-Username",
    "X-Registry-Identity-ID",
    "X-Registry-Certificate-CN",
    "X-Registry-Certificate-O",
)


@dataclass(frozen=True, slots=True)
class OriginalRequest:
    method: str
    scheme: str
    host: str  # as sent, port included
    uri: str  # path + query, as sent
    client_ip: str
    trusted: bool
    registry: Mapping[str, str] = field(default_factory=dict)
    # Derived once, read by every rule tried: what path and host globs match. Rules match the
    # path only: Oathkeeper drops the query too, and Caddy appends the client's query to the
    # auth call itself.
    path: str = field(init=False)
    hostname: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", normalize_path(self.uri.partition("?")[0]))
        object.__setattr__(self, "hostname", _hostname(self.host))

    @property
    def url(self) -> str:
        """The absolute URL the client asked for (``return_to`` after a login)."""
        return f"{self.scheme}://{self.host}{self.uri}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"


def _hostname(host: str) -> str:
    """The host without its port, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def normalize_path(raw: str) -> str:
    """The path as an app is likely to route it: percent-decoded (except ``%2F``), dot
    segments resolved, empty segments dropped. Matching the raw text would let
    ``/public/../admin`` or ``/public/%2e%2e/admin`` pass a rule written for ``/public/**``."""
    if "%" not in raw and "/." not in raw and "//" not in raw:
        return raw or "/"  # the common case: nothing to decode or resolve
    out: list[str] = []
    segments = raw.split("/")
    for segment in segments:
        decoded = unquote(segment).replace("/", "%2F")
        if decoded in {"", "."}:
            continue
        if decoded == "..":
            if out:
                out.pop()
            continue
        out.append(decoded)
    path = "/" + "/".join(out)
    trailing = segments[-1] in {"", ".", ".."} or unquote(segments[-1]) in {".", ".."}
    return path + "/" if trailing and out else path


# The host ends up in redirect URLs: nothing that could end the authority ("/", "@", "?" …).
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9.\-:\[\]_]")


def _first(headers: CIMultiDictProxy[str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _scheme(value: str | None, fallback: str) -> str:
    # X-Forwarded-Proto may list several hops ("https, http"): the first is the client's.
    if value:
        first = value.split(",")[0].strip().lower()
        if first in {"http", "https"}:
            return first
    return fallback


def _uri(value: str) -> str:
    # A full URL (some registries send one) is reduced to its path and query.
    if "://" in value:
        rest = value.split("://", 1)[1]
        slash = rest.find("/")
        value = rest[slash:] if slash >= 0 else "/"
    return value if value.startswith("/") else "/" + value


class ProxyTrust:
    """Which peers may describe the original request, with each answer remembered.

    Every decision asks both questions about the same few proxies and clients; parsing the
    addresses (and hashing the networks, as a cache keyed on them would) dominated the cost
    of reading a request. The memo is bounded: it is emptied when it grows past ``limit``.
    """

    def __init__(self, networks: Sequence[IPNetwork], limit: int = 4096) -> None:
        self.networks = tuple(networks)
        self._limit = limit
        self._peers: dict[str, bool] = {}
        self._clients: dict[tuple[str, tuple[str, ...]], str] = {}

    def trusts(self, peer: str) -> bool:
        known = self._peers.get(peer)
        if known is None:
            peer_ip = parse_ip(peer)
            known = peer_ip is not None and is_trusted(peer_ip, self.networks)
            if len(self._peers) >= self._limit:
                self._peers.clear()
            self._peers[peer] = known
        return known

    def client_ip(self, peer: str, forwarded_for: tuple[str, ...]) -> str:
        key = (peer, forwarded_for)
        known = self._clients.get(key)
        if known is None:
            known = client_ip(peer, forwarded_for, None, self.networks)
            if len(self._clients) >= self._limit:
                self._clients.clear()
            self._clients[key] = known
        return known


def read_original(
    headers: CIMultiDictProxy[str],
    *,
    method: str,
    scheme: str,
    peer: str,
    tail: str | None,
    query: str,
    trust: ProxyTrust,
) -> OriginalRequest:
    """The original request from the auth call.

    ``tail`` is the raw (still percent-encoded) path after ``/decisions`` — None for
    ``/decisions`` itself — and ``query`` the auth call's own raw query string.
    """
    trusted = trust.trusts(peer)
    forwarded_uri = _first(headers, "X-Forwarded-Uri", "X-Original-URI") if trusted else None
    if forwarded_uri is not None:
        uri = _uri(forwarded_uri)
    elif tail is not None:
        uri = "/" + tail.lstrip("/")
        uri += f"?{query}" if query else ""
    else:
        uri = "/"
    forwarded_method = (
        _first(headers, "X-Forwarded-Method", "X-Original-Method") if trusted else None
    )
    forwarded_host = _first(headers, "X-Forwarded-Host") if trusted else None
    if forwarded_host is not None:
        forwarded_host = forwarded_host.split(",")[0].strip()
    proto = _first(headers, "X-Forwarded-Proto") if trusted else None
    registry = (
        {name: headers[name] for name in REGISTRY_HEADERS if headers.get(name)} if trusted else {}
    )
    return OriginalRequest(
        method=(forwarded_method or method).upper(),
        scheme=_scheme(proto, scheme),
        host=_HOST_UNSAFE.sub("", forwarded_host or headers.get("Host") or "") or "localhost",
        uri=uri,
        client_ip=trust.client_ip(peer, tuple(headers.getall("X-Forwarded-For", ()))),
        trusted=trusted,
        registry=registry,
    )
