"""Connections to Kratos' public API: a LIFO keep-alive pool of ``asyncio.Protocol`` objects.

One request at a time per connection (no upstream pipelining), answers framed by llhttp.
Whoever owns an exchange on a connection is its :class:`Sink`. The pool's idle connections
are a stack: the most recently released is taken first, so a small warm set carries the load
and the rest age out from the stack's bottom. At most ``size`` connections are open; a request
finding none idle and the pool full waits (FIFO) for one to be released, at most
``pool_timeout`` seconds (503), never for ever.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

from proxy.edge.wire.clock import Clock
from proxy.kernel.errors import (
    DependencyUnavailable,
    KratosHooksError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger("kratos_hooks.proxy")

Pairs = list[tuple[bytes, bytes]]
_FRAMING = (b"content-length", b"transfer-encoding")


class Sink(Protocol):
    """The owner of the exchange on an upstream connection."""

    def on_head(self, status: int, reason: bytes, headers: Pairs, conn: UpstreamConn) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_complete(self) -> None:
        """The answer is complete; the connection is back in the pool (or closed)."""

    def on_error(self, exc: KratosHooksError, kind: str, conn: UpstreamConn | None) -> None:
        """The exchange failed (``kind``: a ``kratos_hooks_upstream_errors_total`` label)."""

    def flush(self) -> None:
        """The end of one read from Kratos: write what was queued for the client."""

    def up_writable(self, writable: bool) -> None:
        """The connection's write buffer filled up (False) or drained (True)."""


class Acquirer(Protocol):
    """Who waits for a pooled connection."""

    gone: bool  # no longer interested (the client went away): skip it

    def attach(self, conn: UpstreamConn) -> None: ...

    def refuse(self, exc: KratosHooksError, kind: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolLimits:
    size: int  # open connections at most
    connect_timeout: float
    read_timeout: float  # longest silence from Kratos once the request is sent
    keepalive_timeout: float  # an idle connection older than this is closed
    pool_timeout: float  # longest wait for a connection when all are busy


class UpstreamConn(asyncio.Protocol):
    """One connection to Kratos; ``sink`` is None while it is idle."""

    __slots__ = (
        "closed",
        "eof_body",
        "framed",
        "got",
        "head_only",
        "headers",
        "idle_since",
        "in_head",
        "interim",
        "last",
        "parser",
        "pool",
        "r_paused",
        "reason",
        "renew_parser",
        "req_done",
        "reused",
        "sink",
        "transport",
        "w_paused",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        self.headers: Pairs = []
        self.reason = b""
        self.head_only = False
        self.in_head = False
        self.interim = False
        self.last = pool.clock.now
        self.got = False
        self.closed = False
        self.w_paused = False
        self.r_paused = False
        self.reused = False
        self.idle_since = 0.0
        self.renew_parser = False
        self.req_done = True
        self.eof_body = False
        self.framed = False  # the answer has a Content-Length or Transfer-Encoding

    # --- the owner's side ------------------------------------------------------------------
    def start(self, sink: Sink, data: bytes, *, head_only: bool, req_done: bool) -> None:
        """Send a request head (and any body bytes already in) for ``sink``."""
        self.sink = sink
        self.head_only = head_only
        self.req_done = req_done
        self.got = False
        self.eof_body = False
        self.last = self.pool.clock.now
        if data and self.transport is not None:
            self.transport.write(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def write_parts(self, parts: list[bytes]) -> None:
        """Several buffers in one system call (uvloop gathers them: no join, no copy)."""
        if self.transport is not None and not self.closed:
            self.transport.writelines(parts)

    def request_sent(self) -> None:
        """The whole request is written: Kratos' silence counts from now."""
        self.req_done = True
        self.last = self.pool.clock.now

    def pause_reading(self) -> None:
        """The client is not reading: stop reading Kratos (and stop its clock)."""
        if not self.r_paused and self.transport is not None and not self.closed:
            self.r_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.r_paused and self.transport is not None and not self.closed:
            self.r_paused = False
            self.last = self.pool.clock.now
            self.transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection and whatever it was doing (never back to the pool)."""
        self.sink = None
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.abort()

    # --- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def eof_received(self) -> bool | None:
        # A clean end of stream: the end of a close-delimited body (and of nothing else).
        sink = self.sink
        if sink is not None and self.eof_body:
            self.eof_body = False
            self.sink = None
            self.closed = True
            self.pool.forget(self)
            sink.flush()
            sink.on_complete()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        sink = self.sink
        if sink is None:
            return
        self.sink = None
        # A reset (or an EOF before a length or chunked body ended) is never a body's end.
        sink.flush()
        sink.on_error(UpstreamUnavailable(), "reset", self)

    def pause_writing(self) -> None:
        self.w_paused = True
        if self.sink is not None:
            self.sink.up_writable(False)

    def resume_writing(self) -> None:
        self.w_paused = False
        self.last = self.pool.clock.now
        if self.sink is not None:
            self.sink.up_writable(True)

    def data_received(self, data: bytes) -> None:
        self.last = self.pool.clock.now
        self.got = True
        sink = self.sink
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc, httptools.HttpParserCallbackError):
                log.exception("unhandled error reading Kratos' answer")  # a bug of ours
            self.sink = None
            self.abort()
            if sink is not None:
                sink.flush()
                sink.on_error(UpstreamUnavailable(), "reset", self)
            return
        if self.renew_parser:
            # llhttp cannot be told an answer is to a HEAD: it would wait for Content-Length
            # body bytes that never come. That answer ended at its head; a new parser for
            # the next one.
            self.renew_parser = False
            self.parser = httptools.HttpResponseParser(self)
        if sink is not None:
            sink.flush()

    # --- llhttp callbacks --------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []
        self.reason = b""
        self.in_head = True
        self.framed = False

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # trailers arrive here too, after the body: they are dropped
            self.headers.append((name, value))
            if len(name) in (14, 17) and name.lower() in _FRAMING:
                self.framed = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        status = self.parser.get_status_code()
        if status < 200:
            # Interim answers (103 Early Hints, a stray 100) are dropped, as nginx does; the
            # final answer follows on the same message stream. 101 cannot come: Upgrade is
            # never forwarded.
            self.interim = True
            return
        sink = self.sink
        if sink is None:
            return
        bodyless = self.head_only or status in (204, 304)
        if not bodyless:
            self.eof_body = not self.framed
        sink.on_head(status, self.reason, self.headers, self)
        if self.head_only:
            self.renew_parser = True
            self._complete(self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None:
            sink.on_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.head_only or self.sink is None:
            return
        self._complete(self.parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        sink = self.sink
        self.sink = None
        self.eof_body = False
        if keep_alive and self.req_done and not self.closed:
            self.pool.release(self)
        else:
            self.closed = True
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()
        if sink is not None:
            sink.flush()
            sink.on_complete()


class Pool:
    """Kratos' connections: idle (a stack), busy, being opened; and who waits for one."""

    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None, limits: PoolLimits, clock: Clock
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.limits = limits
        self.clock = clock
        self.idle: deque[UpstreamConn] = deque()
        self.busy: set[UpstreamConn] = set()
        self.connecting = 0
        self.waiters: deque[tuple[Acquirer, float]] = deque()
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def open(self) -> int:
        return len(self.idle) + len(self.busy) + self.connecting

    def acquire(self, who: Acquirer) -> None:
        """Hand ``who`` a connection: an idle one now, a new one soon, or the next released."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                self.busy.add(conn)
                who.attach(conn)
                return
        if self.open < self.limits.size:
            self.connecting += 1
            task = asyncio.get_running_loop().create_task(self._connect(who))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        self.waiters.append((who, self.clock.now))

    async def _connect(self, who: Acquirer) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamConn(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                ),
                self.limits.connect_timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError):
            self.connecting -= 1
            if not who.gone:
                who.refuse(UpstreamUnavailable(), "connect")
            self._hand_on()
            return
        self.connecting -= 1
        if conn.closed:
            # Accepted and dropped at once (a relay refusing, Kratos restarting): no exchange
            # will ever report on this connection, so it fails here, not at the read timeout.
            if not who.gone:
                who.refuse(UpstreamUnavailable(), "connect")
            self._hand_on()
            return
        if who.gone or self.closing:
            self.busy.add(conn)
            self.release(conn)
            return
        self.busy.add(conn)
        who.attach(conn)

    def release(self, conn: UpstreamConn) -> None:
        """``conn`` finished an exchange cleanly: to the next waiter, else onto the stack."""
        conn.sink = None
        while self.waiters and not self.closing:
            who, _ = self.waiters.popleft()
            if not who.gone:
                conn.reused = True
                who.attach(conn)
                return
        self.busy.discard(conn)
        if self.closing or len(self.idle) >= self.limits.size:
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
            return
        conn.idle_since = self.clock.now
        self.idle.append(conn)

    def forget(self, conn: UpstreamConn) -> None:
        """``conn`` is closed: it no longer counts, and its place may go to a waiter."""
        if conn in self.busy:
            self.busy.discard(conn)
        else:
            try:
                self.idle.remove(conn)
            except ValueError:
                return
        self._hand_on()

    def _hand_on(self) -> None:
        # A place became free: open a connection for the first waiter still interested.
        while self.waiters and self.open < self.limits.size and not self.closing:
            who, _ = self.waiters.popleft()
            if not who.gone:
                self.acquire(who)
                return

    def sweep(self, now: float) -> None:
        limits = self.limits
        silent = [
            c
            for c in self.busy
            if c.sink is not None
            and not c.r_paused
            and (c.req_done or c.w_paused)
            and now - c.last > limits.read_timeout
        ]
        for conn in silent:
            sink = conn.sink
            conn.abort()
            if sink is not None:
                sink.on_error(UpstreamTimeout(), "timeout", conn)
        idle = self.idle
        while idle and now - idle[0].idle_since > limits.keepalive_timeout:
            conn = idle.popleft()
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        waiters = self.waiters
        while waiters and (waiters[0][0].gone or now - waiters[0][1] > limits.pool_timeout):
            who, _ = waiters.popleft()
            if not who.gone:
                who.refuse(
                    DependencyUnavailable("No connection to the identity service became free"),
                    "pool_timeout",
                )

    def close(self) -> None:
        """Close the idle connections now; busy ones close when their exchange ends."""
        self.closing = True
        while self.idle:
            conn = self.idle.pop()
            conn.closed = True
            if conn.transport is not None:
                conn.transport.close()
        for task in list(self._tasks):
            task.cancel()
        while self.waiters:
            who, _ = self.waiters.popleft()
            if not who.gone:
                who.refuse(UpstreamUnavailable(), "connect")
