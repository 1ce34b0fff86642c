"""A client connection on the public listener: llhttp's callbacks, one state object.

Reading follows the parser: a head (bounded in bytes and in time), then a body (bounded in
silence and in rate), then the next request. Requests are answered in order, one exchange in
flight; pipelined ones wait with reading paused. Output is collected in ``out`` and written
once per read (``flush``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from proxy.edge.wire.exchange import Exchange
from proxy.edge.wire.flow import ReadGate, Reason
from proxy.edge.wire.heads import CONTINUE, Client, error_reply
from proxy.edge.wire.upstream import Pairs
from proxy.kernel.errors import BadRequest, KratosHooksError, RequestError
from proxy.kernel.middleware import request_id_from

if TYPE_CHECKING:
    from proxy.edge.wire.listener import PublicListener

log = logging.getLogger("kratos_hooks.http.server")

# Where the parser is: what the sweep holds the client to.
IDLE = 0  # between requests (keep-alive deadline)
HEAD = 1  # reading a head (header deadline, from accept or from the head's first byte)
BODY = 2  # reading a body (silence and rate deadlines)
READ = 3  # the request is read; its answer is on the way
LINGER = 4  # answered and half-closed; what the client still sends is read and dropped

# How long a connection closed with unread input is drained before it is closed: closing a
# socket with unread bytes resets it, and the reset can destroy the answer in flight (431,
# 413, an early 4xx) before the client reads it. nginx lingers the same way.
LINGER_SECONDS = 2.0
REFUSED_LINGER_SECONDS = 0.5  # a connection refused at accept (over a bound)


class HeaderTooLarge(RequestError):
    status = 431
    error_id = "request_header_fields_too_large"
    message = "The request's headers are too large"


class RequestTimeout(RequestError):
    status = 408
    error_id = "request_timeout"
    message = "The request was not received in time"


class ClientConn(asyncio.Protocol):
    __slots__ = (
        "active",
        "body_received",
        "body_since",
        "closed",
        "consumed",
        "gate",
        "head_open",
        "head_size",
        "headers",
        "last",
        "listener",
        "mid_message",
        "out",
        "parser",
        "peer",
        "phase",
        "queue",
        "reading",
        "since",
        "trailing_error",
        "transport",
        "url",
        "w_paused_at",
        "who",
    )

    def __init__(self, listener: PublicListener) -> None:
        self.listener = listener
        self.parser = httptools.HttpRequestParser(self)
        self.gate = ReadGate(self._reading_resumed)
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.active: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.reading: Exchange | None = None
        self.url: list[bytes] = []
        self.headers: Pairs = []
        self.head_open = 0
        self.head_size = 16
        self.consumed = 0
        self.phase = HEAD  # a fresh connection owes its first head within the header deadline
        self.since = self.last = listener.clock.now
        self.body_since = 0.0
        self.body_received = 0
        self.closed = False
        self.mid_message = False
        self.w_paused_at = 0.0
        self.peer = ""
        self.who: Client | None = None  # None: a trusted proxy's, decided per request
        self.trailing_error: KratosHooksError | None = None

    # --- the connection --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.gate.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else ""
        refusal = self.listener.admit(self)
        if refusal is not None:
            transport.write(error_reply(refusal, request_id_from(None).encode()))
            if self.listener.linger_refused(self):
                # Drained briefly so the request already on its way cannot turn the 503 into
                # a reset; never long, never many: the point is to give the descriptor back.
                self.close_lingering()
                self.since -= LINGER_SECONDS - REFUSED_LINGER_SECONDS
            else:
                self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        self.listener.forget(self)
        active = self.active
        if active is not None and not active.finished:
            active.client_gone()
            if not was_closed:
                self.listener.observer.client_gone(active)
            active.finished = True
        for ex in (active, *self.queue):
            if ex is not None:
                ex.client_gone()
                self.listener.release_ip(ex)
        self.queue.clear()

    def close(self) -> None:
        """Write what is queued and close (a clean end of a keep-alive connection)."""
        self.flush()
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    @property
    def idle(self) -> bool:
        """Between requests: nothing in flight, no request begun (drain closes it now)."""
        return (
            self.active is None
            and not self.queue
            and self.phase in (IDLE, HEAD)
            and (not self.mid_message)
        )

    def close_lingering(self) -> None:
        """Write what is queued, half-close, and drop what the client still sends for a
        moment: a request not read whole must not turn our answer into a reset."""
        self.flush()
        transport = self.transport
        if self.closed or transport is None or self.phase == LINGER:
            return
        if not transport.can_write_eof():
            self.close()
            return
        transport.write_eof()
        self.phase = LINGER
        self.since = self.listener.clock.now
        self.gate.reasons = 0
        transport.resume_reading()

    def abort(self, failed: Exchange | None = None) -> None:
        """Reset the connection: an answer that cannot be completed must not look complete."""
        self.out.clear()
        if failed is not None and not failed.finished:
            failed.finished = True
            self.listener.observer.record(failed)
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()

    # --- output and flow control -----------------------------------------------------------
    def flush(self) -> None:
        out = self.out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            if not self.closed and self.transport is not None:
                self.transport.write(data)

    def write_interim(self) -> None:
        self.out.append(CONTINUE)
        self.flush()

    def pause_writing(self) -> None:
        self.w_paused_at = self.listener.clock.now
        active = self.active
        if active is not None and active.up is not None:
            active.up.pause_reading()

    def resume_writing(self) -> None:
        self.w_paused_at = 0.0
        active = self.active
        if active is not None and active.up is not None:
            active.up.resume_reading()

    def _reading_resumed(self) -> None:
        # Time spent paused by us is not the client's: its deadlines restart.
        self.last = self.body_since = self.listener.clock.now
        self.body_received = 0

    # --- input -----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last = self.listener.clock.now
        if self.phase == LINGER:
            return
        self.consumed = 0
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.gate.pause(Reason.HALT)  # what follows is not HTTP/1.1 any more
        except httptools.HttpParserCallbackError:
            # One of our callbacks raised: a bug, not the client's fault. Logged once with
            # its traceback (the cause), answered with a bare 500.
            log.exception("unhandled error in the public listener")
            self.gate.pause(Reason.HALT)
            if self.active is None or self.active.finished:
                self.refuse_head(KratosHooksError())
            else:
                self.abort(self.active)
        except httptools.HttpParserError as exc:
            self._malformed(exc)
        else:
            if self.phase == HEAD:
                # llhttp buffers a header line until it ends: count what was fed while a
                # head is open, so an endless line is refused rather than held.
                self.head_open += max(0, len(data) - self.consumed)
                if self.head_open > self.listener.limits.max_header_size:
                    self.refuse_head(HeaderTooLarge())
        self.flush()

    def _malformed(self, exc: Exception) -> None:
        log.info("malformed request refused", extra={"error": type(exc).__name__, "status": 400})
        self.gate.pause(Reason.HALT)
        reading = self.reading
        if reading is not None and reading is self.active and not reading.finished:
            reading.keep_alive = False
            reading.drop_upstream()  # its body is broken: nothing more goes upstream
            reading.reply_error(BadRequest("The request body's framing is malformed"))
            return
        self.refuse_head(BadRequest("The request could not be parsed"))

    def refuse_head(self, exc: KratosHooksError) -> None:
        """Answer a request that never got an exchange, then close."""
        self.gate.pause(Reason.HALT)
        self.phase = READ
        if self.active is not None:
            self.trailing_error = exc  # after the answer in flight
            for queued in self.queue:
                queued.client_gone()
            self.queue.clear()
            return
        self.listener.observer.refused(exc.status)
        self.out.append(error_reply(exc, request_id_from(None).encode()))
        self.close_lingering()

    # --- llhttp callbacks ------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.mid_message = True
        if self.phase != HEAD:
            self.phase = HEAD
            self.since = self.listener.clock.now
        self.url = []
        self.headers = []
        self.head_open = 0
        self.head_size = 16  # the request line's method, version and separators

    def on_url(self, url: bytes) -> None:
        self.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.phase == HEAD:  # not a trailer: trailers never join a head
            self.headers.append((name, value))
            self.head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        now = self.listener.clock.now
        target = b"".join(self.url)
        size = len(target) + self.head_size
        self.consumed += size
        if size > self.listener.limits.max_header_size:
            self.refuse_head(HeaderTooLarge())
            return
        exchange = self.listener.open_exchange(self, target, self.headers)
        self.phase = BODY if exchange.has_body else READ
        self.last = self.body_since = now
        self.body_received = 0
        self.reading = exchange
        if self.active is None:
            self.active = exchange
            exchange.begin()
        else:
            self.queue.append(exchange)
            self.gate.pause(Reason.QUEUE)

    def on_body(self, body: bytes) -> None:
        self.consumed += len(body)
        self.body_received += len(body)
        reading = self.reading
        if reading is not None:
            reading.on_request_body(body)

    def on_message_complete(self) -> None:
        self.mid_message = False
        if self.phase != HEAD:
            self.phase = READ
        reading = self.reading
        self.reading = None
        if reading is not None:
            reading.on_request_complete()

    # --- the exchange's end ----------------------------------------------------------------
    def exchange_done(self, exchange: Exchange) -> None:
        if exchange.finished:
            return
        exchange.finished = True
        exchange.gone = True
        self.flush()
        self.listener.observer.record(exchange)
        if self.closed:
            return
        if not exchange.keep_alive or self.listener.draining:
            if exchange.req_done:
                self.close()
            else:
                self.close_lingering()
            return
        if self.queue:
            nxt = self.active = self.queue.popleft()
            if not self.queue:
                self.gate.resume(Reason.QUEUE)
            nxt.begin()
            return
        self.active = None
        if self.trailing_error is not None:
            self.refuse_head(self.trailing_error)
        elif self.phase == READ:
            self.phase = IDLE
            self.last = self.listener.clock.now

    # --- deadlines (called by the listener's sweep) ----------------------------------------
    def sweep(self, now: float) -> None:
        limits = self.listener.limits
        if self.w_paused_at and now - self.w_paused_at > limits.send_timeout:
            self.abort(self.active)  # the client stopped reading its answer
        elif self.phase == LINGER:
            if now - self.since > LINGER_SECONDS:
                self.close()
        elif self.gate.paused:
            return
        elif self.phase == HEAD and now - self.since > limits.header_timeout:
            self.time_out()
        elif self.phase == BODY and self._body_late(now):
            self.time_out()
        elif self.phase == IDLE and now - self.last > limits.idle_timeout:
            self.close()

    def _body_late(self, now: float) -> bool:
        limits = self.listener.limits
        if now - self.last > limits.body_timeout:
            return True
        # A body larger than the buffer streams over an upstream connection: it must keep a
        # minimum average rate (after a grace period) so it cannot hold that connection.
        elapsed = now - self.body_since - limits.body_rate_grace
        return (
            limits.body_min_rate > 0
            and elapsed > 0
            and (self.body_received < limits.body_min_rate * elapsed)
        )

    def time_out(self) -> None:
        reading = self.reading
        if self.phase == BODY and reading is not None and reading is self.active:
            if not reading.finished:
                reading.keep_alive = False
                reading.drop_upstream()
                reading.reply_error(RequestTimeout())
            self.close_lingering()
        elif self.phase == BODY:
            self.abort()  # a queued request's body stalled: nothing of it was forwarded
        else:
            self.refuse_head(RequestTimeout())
