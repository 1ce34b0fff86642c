"""The public listener on the wire data path: accepting, admitting, sweeping, draining.

``PublicListener`` owns the client connections, the upstream pool, the clock and the
metrics; ``open_exchange`` turns a parsed head into an :class:`Exchange` — the canonical view
(``kernel/view.view_of``), the hooked-route lookup, the client's address (trusted-proxy
logic, remembered per peer) and the upstream head, all computed once.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Protocol

from yarl import URL

from config.settings import Settings
from proxy.edge.wire.client import ClientConn
from proxy.edge.wire.clock import Clock, run_sweeps, sweep_interval
from proxy.edge.wire.exchange import Exchange
from proxy.edge.wire.heads import Client, Origin, Pairs, request_head
from proxy.edge.wire.hooks import HookRun
from proxy.edge.wire.limits import ClientLimits
from proxy.edge.wire.observe import AccessLog, Observer
from proxy.edge.wire.upstream import Pool, PoolLimits
from proxy.kernel.access_log import AccessLines
from proxy.kernel.client_ip import client_ip, is_trusted, parse_ip
from proxy.kernel.errors import BadRequest, KratosHooksError
from proxy.kernel.hooked import Hook
from proxy.kernel.request_ids import SANE_BYTES, fresh_bytes
from proxy.kernel.view import RequestView, view_of

log = logging.getLogger("kratos_hooks")

# The view of a request refused before it had one (metrics label, access log).
UNMATCHED = RequestView("", "", "", "", "unmatched")
# The caller's X-Request-ID is kept when it is a sane token (as ``request_id_from``).
_MEMO = 4096  # distinct targets / forwarding chains remembered; the memo restarts when full
# Connections refused at accept that may linger at once (the rest are closed outright).
_REFUSED_LINGERING = 64


class Overloaded(KratosHooksError):
    status = 503
    error_id = "too_many_connections"
    message = "The service is handling too many connections"


class Hooks(Protocol):
    """Which hook, if any, a request's canonical route has (``kernel/view.HookTable``)."""

    def get(self, method: str, view: RequestView) -> Hook | None: ...


class PublicListener:
    """The edge proxy's listener: every request to Kratos, hooked routes to their feature."""

    def __init__(
        self,
        settings: Settings,
        hooks: Hooks | None,
        limits: ClientLimits,
        *,
        name: str = "public",
        access_log: bool | AccessLines = True,
    ) -> None:
        self.settings = settings
        self.hooks = hooks
        self.limits = limits
        self.name = name
        self.access_log = access_log
        url = URL(settings.kratos.public_url)
        self.origin = Origin(
            url.raw_path.rstrip("/").encode("latin-1"),
            url.raw_authority.encode("latin-1"),
            settings.proxy.preserve_host,
        )
        self.upstream = (url.host or "127.0.0.1", url.port or 80, url.scheme == "https")
        self.prefix = settings.proxy.path_prefix
        self.trusted = settings.server.trusted_proxies
        self.clients: set[ClientConn] = set()
        self.refused: set[ClientConn] = set()  # answered 503 at accept, lingering
        self.per_ip: dict[bytes, int] = {}
        self.draining = False
        self._views: dict[bytes, RequestView] = {}
        self._peers: dict[str, Client | None] = {}
        self._chains: dict[tuple[str, tuple[bytes, ...], bytes | None], Client] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # --- running ---------------------------------------------------------------------------
    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Listen on ``host:port``; the port bound."""
        proxy = self.settings.proxy
        self.clock = Clock()
        host_, port_, tls = self.upstream
        self.pool = Pool(
            host_,
            port_,
            ssl.create_default_context() if tls else None,
            PoolLimits(
                size=proxy.pool_size,
                connect_timeout=proxy.connect_timeout,
                read_timeout=proxy.read_timeout,
                keepalive_timeout=proxy.keepalive_timeout,
                pool_timeout=proxy.pool_timeout,
            ),
            self.clock,
        )
        # The process's access lines (shared with the internal listener), or its own.
        lines = self.access_log if isinstance(self.access_log, AccessLines) else None
        access = AccessLog(lines) if self.access_log else None
        self.observer = Observer(self.name, access)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConn(self), host, port, reuse_port=reuse_port or None, backlog=4096
        )
        limits = self.limits
        interval = sweep_interval(
            [
                limits.header_timeout,
                limits.idle_timeout,
                limits.body_timeout,
                limits.send_timeout,
                proxy.read_timeout,
                proxy.pool_timeout,
                proxy.keepalive_timeout,
            ]
        )
        self._sweeper = loop.create_task(run_sweeps(self.clock, interval, self.sweep))
        sockets: Any = getattr(self._server, "sockets")  # noqa: B009 uvloop: a list
        return int(sockets[0].getsockname()[1])

    def sweep(self, now: float) -> None:
        for conn in list(self.clients):
            conn.sweep(now)
        for conn in list(self.refused):
            conn.sweep(now)
        self.pool.sweep(now)

    async def stop(self, timeout: float) -> None:
        """Stop accepting, close idle connections, let exchanges in flight finish within
        ``timeout`` seconds (their connections close after them), then close the rest."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        for conn in list(self.clients):
            if conn.idle:
                conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.clients and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.clients):
            conn.abort(conn.active)
        self.pool.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.observer.close()
        if self._server is not None:
            await self._server.wait_closed()

    # --- admission -------------------------------------------------------------------------
    def admit(self, conn: ClientConn) -> KratosHooksError | None:
        """Register ``conn``; the refusal to answer it with when a bound is reached."""
        conn.who = who = self._peer(conn.peer)
        if self.draining or len(self.clients) >= self.limits.max_connections:
            return Overloaded()
        if who is not None and self.limits.max_connections_per_ip:
            count = self.per_ip.get(who.ip, 0)
            if count >= self.limits.max_connections_per_ip:
                return Overloaded("Too many connections from this address")
            self.per_ip[who.ip] = count + 1
        self.clients.add(conn)
        return None

    def linger_refused(self, conn: ClientConn) -> bool:
        if len(self.refused) >= _REFUSED_LINGERING:
            return False
        self.refused.add(conn)
        return True

    def forget(self, conn: ClientConn) -> None:
        self.refused.discard(conn)
        if conn not in self.clients:
            return
        self.clients.discard(conn)
        who = conn.who
        if who is not None and self.limits.max_connections_per_ip:
            count = self.per_ip.get(who.ip, 1) - 1
            if count > 0:
                self.per_ip[who.ip] = count
            else:
                self.per_ip.pop(who.ip, None)

    def hold_ip(self, ex: Exchange) -> KratosHooksError | None:
        """Behind a trusted proxy one connection carries many clients: the per-address
        bound counts each client's requests in flight instead of its connections."""
        bound = self.limits.max_connections_per_ip
        ip = ex.who_ip
        count = self.per_ip.get(ip, 0)
        if count >= bound:
            return Overloaded("Too many requests in flight from this address")
        self.per_ip[ip] = count + 1
        ex.ip_held = True
        return None

    def release_ip(self, ex: Exchange) -> None:
        if ex.ip_held:
            ex.ip_held = False
            count = self.per_ip.get(ex.who_ip, 1) - 1
            if count > 0:
                self.per_ip[ex.who_ip] = count
            else:
                self.per_ip.pop(ex.who_ip, None)

    # --- who is asking ---------------------------------------------------------------------
    def _peer(self, peer: str) -> Client | None:
        """The client of every request from ``peer``, or None when the peer is a trusted
        proxy (its requests name their clients). Remembered per peer address."""
        if peer in self._peers:
            return self._peers[peer]
        address = parse_ip(peer)
        if address is None:
            who: Client | None = Client(peer.encode(), peer.encode(), False)
        elif self.trusted and is_trusted(address, self.trusted):
            who = None
        else:
            text = str(address).encode()
            who = Client(text, text, False)
        if len(self._peers) >= _MEMO:
            self._peers.clear()
        self._peers[peer] = who
        return who

    def identify(self, peer: str, headers: Pairs) -> Client:
        """The client of a request from a trusted proxy (``kernel/client_ip``)."""
        chain = tuple(v for n, v in headers if n.lower() == b"x-forwarded-for")
        true_ip = next((v for n, v in headers if n.lower() == b"true-client-ip"), None)
        key = (peer, chain, true_ip)
        who = self._chains.get(key)
        if who is None:
            ip = client_ip(
                peer,
                [v.decode("latin-1") for v in chain],
                true_ip.decode("latin-1") if true_ip is not None else None,
                self.trusted,
            )
            address = parse_ip(peer)
            who = Client(ip.encode(), str(address or peer).encode(), True)
            if len(self._chains) >= _MEMO:
                self._chains.clear()
            self._chains[key] = who
        return who

    def view(self, target: bytes) -> RequestView:
        """``view_of`` the target (pure, so remembered for the targets seen most)."""
        view = self._views.get(target)
        if view is None:
            view = view_of(target.decode("latin-1"), self.prefix)
            if len(self._views) >= _MEMO:
                self._views.clear()
            self._views[target] = view
        return view

    # --- a request -------------------------------------------------------------------------
    def open_exchange(self, conn: ClientConn, target: bytes, headers: Pairs) -> Exchange:
        parser = conn.parser
        method: bytes = parser.get_method()
        framing = _framing(headers)
        content_length, chunked, expect, rid_header = framing
        rid = rid_header if rid_header and SANE_BYTES.fullmatch(rid_header) else fresh_bytes()
        who = conn.who or self.identify(conn.peer, headers)
        http10 = parser.get_http_version() == "1.0"
        refusal: KratosHooksError | None = None
        try:
            view = self.view(target)
        except KratosHooksError as exc:
            view, refusal = UNMATCHED, exc
        upgrade = parser.should_upgrade()
        if upgrade and refusal is None and (chunked or content_length):
            refusal = BadRequest("An upgrade request cannot carry a body")
        hook = None
        if refusal is None and self.hooks is not None:
            hook = self.hooks.get(method.decode("latin-1"), view)
        head = b""
        if refusal is None and hook is None:
            head = request_head(
                method, view.raw.encode("latin-1"), headers, self.origin, who, rid, chunked=chunked
            )
        ex = Exchange(
            conn,
            method,
            view,
            rid,
            head,
            http10=http10,
            keep_alive=parser.should_keep_alive() and not upgrade and not self.draining,
            content_length=content_length,
            chunked=chunked,
            expect=expect and not http10,
            who_ip=who.ip,
        )
        ex.target_text = target.decode("latin-1")
        if refusal is None and conn.who is None and self.limits.max_connections_per_ip:
            refusal = self.hold_ip(ex)
        ex.refusal = refusal
        if hook is not None:
            ex.target = view.raw.encode("latin-1")
            ex.headers = headers
            ex.hook = HookRun(ex, hook, who)
        return ex


def _framing(headers: Pairs) -> tuple[int | None, bool, bool, bytes | None]:
    """(Content-Length, chunked?, Expect: 100-continue?, X-Request-ID) of a request head.
    llhttp has already refused conflicting framing (two lengths, a length with chunked,
    a Transfer-Encoding not ending in chunked)."""
    length: int | None = None
    chunked = expect = False
    rid: bytes | None = None
    for name, value in headers:
        if len(name) not in (6, 12, 14, 17):
            continue
        lname = name.lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding":
            chunked = True
        elif lname == b"expect":
            expect = value.strip().lower() == b"100-continue"
        elif lname == b"x-request-id":
            rid = value
    return length, chunked, expect, rid
