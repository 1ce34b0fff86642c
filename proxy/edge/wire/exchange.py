"""One request and its answer on a client connection: the upstream connection's sink.

The request side buffers the body until ``body_buffer`` bytes are in (or the body is whole)
before it takes an upstream connection — a slow client never holds one while it trickles a
small body, as nginx's ``proxy_request_buffering`` does — then streams the rest from the parser
callbacks. The answer side writes Kratos' head and body into the client's output list, which is
written once per read from Kratos.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from proxy.edge.wire.flow import Reason
from proxy.edge.wire.heads import (
    LAST_CHUNK,
    ResponseHead,
    chunk,
    connection_end,
    error_reply,
    response_head,
)
from proxy.edge.wire.upstream import Pairs, UpstreamConn
from proxy.kernel.errors import KratosHooksError
from proxy.kernel.view import RequestView

if TYPE_CHECKING:
    from proxy.edge.wire.client import ClientConn
    from proxy.edge.wire.hooks import HookRun

log = logging.getLogger("kratos_hooks.proxy")

# A stale keep-alive connection (Kratos closed it as it was taken) is retried once, only for
# these methods and only when no byte came back: a POST is never sent twice.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS"})


class Exchange:
    """A request on a client connection, and the sink of its upstream exchange."""

    __slots__ = (
        "acquiring",
        "body_bound",
        "bytes_sent",
        "chunked",
        "client",
        "content_length",
        "expect",
        "finished",
        "gone",
        "head",
        "head_only",
        "headers",
        "hook",
        "http10",
        "ip_held",
        "keep_alive",
        "method",
        "pending",
        "pending_size",
        "refusal",
        "req_done",
        "resp",
        "retried",
        "rid",
        "started",
        "status",
        "target",
        "target_text",
        "up",
        "upstream_at",
        "upstream_status",
        "view",
        "who_ip",
    )

    def __init__(
        self,
        client: ClientConn,
        method: bytes,
        view: RequestView,
        rid: bytes,
        head: bytes,
        *,
        http10: bool,
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
        expect: bool,
        who_ip: bytes,
    ) -> None:
        self.client = client
        self.method = method
        self.view = view
        self.target = b""  # only kept for hooked routes
        self.target_text = ""  # the whole raw target, for the access log
        self.refusal: KratosHooksError | None = None  # answered without forwarding
        self.headers: Sequence[tuple[bytes, bytes]] = []  # only kept for hooked routes
        self.rid = rid
        self.head = head
        self.head_only = method == b"HEAD"
        self.http10 = http10
        self.keep_alive = keep_alive
        self.content_length = content_length
        self.chunked = chunked
        self.expect = expect
        self.who_ip = who_ip
        self.req_done = False
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.body_bound = client.listener.limits.body_buffer
        self.acquiring = False
        self.up: UpstreamConn | None = None
        self.resp: ResponseHead | None = None
        self.status = 0
        self.upstream_status = 0
        self.bytes_sent = 0
        self.retried = False
        self.finished = False
        self.gone = False
        self.hook: HookRun | None = None
        self.ip_held = False  # counted in the listener's per-client bound (trusted proxies)
        self.started = time.perf_counter()
        self.upstream_at = 0.0

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    # --- the request side -------------------------------------------------------------------
    def begin(self) -> None:
        """The exchange is the connection's active one: run its hook, or forward it."""
        if self.refusal is not None:
            self.reply_error(self.refusal)
            return
        if self.hook is not None:
            self.hook.start()
            return
        if self.expect and self.has_body and not self.req_done:
            self.client.write_interim()
        if self.req_done or not self.has_body or self.pending_size >= self.body_bound:
            self._acquire()

    def _acquire(self) -> None:
        if not self.acquiring and not self.gone:
            self.acquiring = True
            self.upstream_at = time.perf_counter()
            self.client.listener.pool.acquire(self)

    def on_request_body(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # never forwarded; the connection closes after the answer
        if self.hook is not None:
            self.hook.on_body(data)
            return
        up = self.up
        if up is not None:
            up.write(chunk(data) if self.chunked else data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        # A body already whole (its Content-Length in) is not paused for: its end follows in
        # this same read, and ``on_request_complete`` takes the connection — two system
        # calls fewer per request for a body of the bound's size that came in one read.
        if self.pending_size >= self.body_bound and self.pending_size != self.content_length:
            self.client.gate.pause(Reason.BUFFER)
            if self is self.client.active:
                self._acquire()

    def on_request_complete(self) -> None:
        self.req_done = True
        if self.hook is not None:
            self.hook.on_complete()
            return
        up = self.up
        if up is not None:
            if self.chunked:
                up.write(LAST_CHUNK)
            up.request_sent()
        elif self is self.client.active:
            self._acquire()

    # --- Acquirer --------------------------------------------------------------------------
    def attach(self, conn: UpstreamConn) -> None:
        """An upstream connection for this request: the head and the body so far, one write."""
        self.acquiring = False
        if self.gone:
            conn.pool.release(conn)
            return
        self.up = conn
        parts = [self.head]
        for piece in self.pending:
            parts.append(chunk(piece) if self.chunked else piece)
        if self.req_done and self.chunked:
            parts.append(LAST_CHUNK)
        self.pending = []
        self.pending_size = 0
        if len(parts) == 1:
            conn.start(self, parts[0], head_only=self.head_only, req_done=self.req_done)
        else:
            conn.start(self, b"", head_only=self.head_only, req_done=self.req_done)
            conn.write_parts(parts)
        self.client.gate.resume(Reason.BUFFER)
        if self.client.w_paused_at:
            conn.pause_reading()
        if conn.w_paused:
            self.client.gate.pause(Reason.UPSTREAM)

    def refuse(self, exc: KratosHooksError, kind: str) -> None:
        self.acquiring = False
        self.client.listener.observer.upstream_error(kind)
        self.reply_error(exc)

    # --- Sink: the answer ------------------------------------------------------------------
    def on_head(self, status: int, reason: bytes, headers: Pairs, conn: UpstreamConn) -> None:
        self.client.listener.observer.upstream_latency(self.view.label, self.upstream_at)
        self.upstream_status = status
        self.begin_response(status, reason, headers)

    def begin_response(self, status: int, reason: bytes, headers: Pairs) -> None:
        """Kratos' head, as the client gets it (also a hooked route's relayed answer)."""
        resp = self.resp = response_head(
            status, reason, headers, self.rid, head_only=self.head_only, http10=self.http10
        )
        self.status = status
        if resp.close_delimited or not self.req_done or self.client.listener.draining:
            # A body not read whole cannot be skipped to find the next request.
            self.keep_alive = False
        self.client.out += (resp.head, connection_end(self.keep_alive, self.http10))

    def on_body(self, data: bytes) -> None:
        resp = self.resp
        if resp is None or not data:
            return
        self.bytes_sent += len(data)
        if resp.chunked:
            self.client.out.append(chunk(data))
        else:
            self.client.out.append(data)

    def on_complete(self) -> None:
        self.up = None
        if self.resp is not None and self.resp.chunked:
            self.client.out.append(LAST_CHUNK)
        self.client.exchange_done(self)

    def on_error(self, exc: KratosHooksError, kind: str, conn: UpstreamConn | None) -> None:
        self.up = None
        if self.gone:
            return
        if self.resp is None and self._retry(conn, kind):
            return
        self.client.listener.observer.upstream_error(kind)
        if kind == "timeout":
            log.warning("upstream timed out", extra={"route": self.view.label})
        elif self.resp is None:
            log.warning("upstream unreachable", extra={"route": self.view.label, "error": kind})
        else:
            log.warning("upstream failed mid-response", extra={"route": self.view.label})
        self.reply_error(exc)

    def _retry(self, conn: UpstreamConn | None, kind: str) -> bool:
        if (
            kind == "reset"
            and conn is not None
            and conn.reused
            and not conn.got
            and not self.retried
            and self.method in IDEMPOTENT
            and not self.has_body
        ):
            self.retried = True
            self._acquire()
            return True
        return False

    def flush(self) -> None:
        self.client.flush()

    def up_writable(self, writable: bool) -> None:
        if writable:
            self.client.gate.resume(Reason.UPSTREAM)
        else:
            self.client.gate.pause(Reason.UPSTREAM)

    # --- endings ---------------------------------------------------------------------------
    def reply_error(self, exc: KratosHooksError) -> None:
        """Answer ``exc`` in Kratos' shape, or — the answer already begun — cut the client off:
        a truncated body must never look complete."""
        if self.finished or self.gone:
            return
        if self.resp is not None:
            self.client.abort()
            return
        self.keep_alive = self.keep_alive and self.req_done and not self.client.listener.draining
        self.status = exc.status
        self.resp = ResponseHead(b"", None, False, False)
        self.client.out.append(error_reply(exc, self.rid, keep_alive=self.keep_alive))
        self.client.exchange_done(self)

    def drop_upstream(self) -> None:
        """Abort the upstream exchange (never back to the pool: it is unfinished)."""
        up = self.up
        self.up = None
        if up is not None:
            up.abort()

    def client_gone(self) -> None:
        """The client closed its connection: free the upstream connection at once."""
        self.gone = True
        self.drop_upstream()
        if self.hook is not None:
            self.hook.client_gone()
