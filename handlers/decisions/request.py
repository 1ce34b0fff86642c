"""What request is being decided: read from the auth call, pure and I/O-free.

Proxies describe the original request in headers: Traefik, Caddy and registries send
``X-Forwarded-Method/Proto/Host/Uri``; nginx by convention ``X-Original-URI`` and
``X-Original-Method``; Oathkeeper-style callers put the path after ``/decisions``. Those
headers are believed only when the direct peer is a trusted proxy — anyone else could claim
to be asking about a public path while presenting a cookie for a protected one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from config.fields import IPNetwork
from handlers.decisions.paths import canonical_path
from proxy.kernel.client_ip import client_ip, is_trusted, parse_ip

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


@dataclass(slots=True)
class _AuthCall:
    """What the auth call says about the original request, read only when asked."""

    headers: CIMultiDictProxy[str]
    method: str  # the auth call's own, used when no forwarded method is believed
    scheme: str
    peer: str
    trust: ProxyTrust
    trusted: bool

    def forwarded(self, *names: str) -> str | None:
        return _first(self.headers, *names) if self.trusted else None

    def original_method(self) -> str:
        return (self.forwarded("X-Forwarded-Method", "X-Original-Method") or self.method).upper()

    def original_scheme(self) -> str:
        return _scheme(self.forwarded("X-Forwarded-Proto"), self.scheme)

    def original_host(self) -> str:
        forwarded = self.forwarded("X-Forwarded-Host")
        host = forwarded.split(",")[0].strip() if forwarded else self.headers.get("Host") or ""
        return _HOST_UNSAFE.sub("", host) or "localhost"

    def client_ip(self) -> str:
        return self.trust.client_ip(self.peer, tuple(self.headers.getall("X-Forwarded-For", ())))

    def registry(self) -> dict[str, str]:
        if not self.trusted:
            return {}
        return {name: self.headers[name] for name in REGISTRY_HEADERS if self.headers.get(name)}


class OriginalRequest:
    """The request being decided.

    Made from values, or by ``read_original`` from the auth call: then the method, scheme,
    host, client IP and registry headers are each read the first time a rule, an authorizer
    or an answer asks for them — a rule that matches the path alone never pays for the rest.
    ``path`` (what path globs match) and ``forms`` (the ambiguous forms a rule must allow,
    ``handlers.decisions.paths``) are always derived: rules match the canonical path only, as
    Oathkeeper does (Caddy appends the client's query to the auth call itself).
    """

    __slots__ = (
        "_call",
        "_client_ip",
        "_host",
        "_hostname",
        "_method",
        "_registry",
        "_scheme",
        "forms",
        "path",
        "trusted",
        "uri",
    )

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,  # as sent, port included
        uri: str,  # path + query, as sent
        client_ip: str,
        trusted: bool,
        registry: Mapping[str, str] | None = None,
        *,
        call: _AuthCall | None = None,
    ) -> None:
        self.uri = uri
        self.trusted = trusted
        self._call = call
        self._hostname: str | None = None
        if call is not None:  # every decision makes one: no work for unread parts
            self.path, self.forms = path_of(uri)
            self._method: str | None = None
            self._scheme: str | None = None
            self._host: str | None = None
            self._client_ip: str | None = None
            self._registry: Mapping[str, str] | None = None
            return
        self.path, self.forms = canonical_path(uri)
        self._method = method
        self._scheme = scheme
        self._host = host
        self._client_ip = client_ip
        self._registry = dict(registry or {})

    @classmethod
    def asked(cls, uri: str, call: _AuthCall) -> OriginalRequest:
        """The request ``call`` describes, each part read from it when first needed."""
        return cls("", "", "", uri, "", call.trusted, call=call)

    def _asked(self) -> _AuthCall:
        assert self._call is not None, "a value-made request has every part"
        return self._call

    @property
    def method(self) -> str:
        if self._method is None:
            self._method = self._asked().original_method()
        return self._method

    @property
    def scheme(self) -> str:
        if self._scheme is None:
            self._scheme = self._asked().original_scheme()
        return self._scheme

    @property
    def host(self) -> str:
        if self._host is None:
            self._host = self._asked().original_host()
        return self._host

    @property
    def hostname(self) -> str:
        """The host without its port, lower-cased: what host globs match."""
        if self._hostname is None:
            self._hostname = _hostname(self.host)
        return self._hostname

    @property
    def client_ip(self) -> str:
        if self._client_ip is None:
            self._client_ip = self._asked().client_ip()
        return self._client_ip

    @property
    def registry(self) -> Mapping[str, str]:
        if self._registry is None:
            self._registry = self._asked().registry()
        return self._registry

    @property
    def url(self) -> str:
        """The absolute URL the client asked for (``return_to`` after a login)."""
        return f"{self.scheme}://{self.host}{self.uri}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    def __repr__(self) -> str:
        return f"OriginalRequest({self.method} {self.url}, client_ip={self.client_ip})"


def _hostname(host: str) -> str:
    """The host without its port, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


# Proxies ask about the same few URIs over and over: their paths are remembered, boundedly
# (least recently used first out, so a client sending endless new URIs evicts, never grows).
PATHS_LIMIT = 4096


# ``canonical_path`` of a URI (path + query): its canonical path and the ambiguous forms in it.
path_of = functools.lru_cache(maxsize=PATHS_LIMIT)(canonical_path)


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

    ``tail`` is the raw path after ``/decisions`` exactly as the auth call carried it (still
    percent-encoded, a fragment included) — None for ``/decisions`` itself — and ``query`` the
    auth call's own raw query string.
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
    return OriginalRequest.asked(uri, _AuthCall(headers, method, scheme, peer, trust, trusted))
