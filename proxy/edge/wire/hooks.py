"""Hooked routes on the wire data path: ``kernel.hooked.Hooked`` over an :class:`Exchange`.

Only these requests get a task, a bounded buffered body and Python objects for headers and
Kratos' answer. The body is buffered as it arrives, up to ``body_buffer`` bytes until the
hook asks for it with ``read(limit)`` (then up to ``limit``); past the limit the hook gets
``BodyTooLarge`` (413) and nothing is forwarded. A client that goes away does not cancel the
hook: what it judged (a login attempt) still settles; its reply is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.edge.wire.flow import Reason
from proxy.edge.wire.heads import (
    FRAMING,
    Client,
    ResponseHead,
    connection_end,
    own_head,
    request_head,
)
from proxy.edge.wire.upstream import Pairs, UpstreamConn
from proxy.kernel.errors import (
    BodyTooLarge,
    ClientGone,
    KratosHooksError,
)
from proxy.kernel.hooked import ANSWER_LIMIT, Answer, Hook, Reply
from proxy.kernel.view import RequestView

if TYPE_CHECKING:
    from proxy.edge.wire.exchange import Exchange

log = logging.getLogger("kratos_hooks.http")

# What ``fetch`` does not pass on from the caller's request: it has no body, and says what
# it accepts.
_FETCH_DROP = FRAMING | {b"content-type", b"content-encoding", b"accept-encoding", b"accept"}


def _text_headers(pairs: Sequence[tuple[bytes, bytes]]) -> CIMultiDictProxy[str]:
    """Headers as text the way aiohttp decodes them (UTF-8, other bytes as lone surrogates),
    so a feature reads the same characters Kratos' Go decoder does."""
    text = CIMultiDict(
        (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
        for n, v in pairs
    )
    return CIMultiDictProxy(text)


class WireAnswer:
    """Kratos' answer to a hooked request: read up to a limit, the rest left on the
    connection for ``Reply.relay`` to stream (a sink, then an ``Answer``)."""

    __slots__ = (
        "_headers",
        "broken",
        "chunks",
        "complete",
        "conn",
        "data",
        "gone",
        "head_only",
        "kind",
        "limit",
        "raw_headers",
        "reason",
        "size",
        "status",
        "waiter",
    )

    def __init__(self, data: bytes, limit: int, *, head_only: bool) -> None:
        self.data = data
        self.limit = limit
        self.head_only = head_only
        self.status = 0
        self.reason = b""
        self.raw_headers: Pairs = []
        self._headers: CIMultiDictProxy[str] | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.complete = False
        self.broken = False
        self.gone = False
        self.kind = ""
        self.conn: UpstreamConn | None = None
        self.waiter: asyncio.Future[WireAnswer] = asyncio.get_running_loop().create_future()

    # --- Answer ----------------------------------------------------------------------------
    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = _text_headers(self.raw_headers)
        return self._headers

    @property
    def body(self) -> bytes:
        body = b"".join(self.chunks)
        return body if self.complete else body[: self.limit]

    # --- Acquirer --------------------------------------------------------------------------
    def attach(self, conn: UpstreamConn) -> None:
        self.conn = conn
        conn.start(self, self.data, head_only=self.head_only, req_done=True)

    def refuse(self, exc: KratosHooksError, kind: str) -> None:
        self.kind = kind
        if not self.waiter.done():
            self.waiter.set_exception(exc)

    # --- Sink ------------------------------------------------------------------------------
    def on_head(self, status: int, reason: bytes, headers: Pairs, conn: UpstreamConn) -> None:
        self.status, self.reason, self.raw_headers = status, reason, list(headers)

    def on_body(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.limit and not self.waiter.done():
            if self.conn is not None:
                self.conn.pause_reading()  # the rest waits on the socket for the relay
            self.waiter.set_result(self)

    def on_complete(self) -> None:
        self.complete = True
        self.conn = None
        if not self.waiter.done():
            self.waiter.set_result(self)

    def on_error(self, exc: KratosHooksError, kind: str, conn: UpstreamConn | None) -> None:
        self.conn = None
        self.kind = kind
        if not self.waiter.done():
            self.waiter.set_exception(exc)
        else:
            self.broken = True  # cut after the part read: a relay must not look complete

    def flush(self) -> None:
        pass

    def up_writable(self, writable: bool) -> None:
        pass  # the request went out in one write

    def discard(self) -> None:
        """The hook did not relay this answer: its connection's exchange is unfinished."""
        self.gone = True
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()


class HookRun:
    """One hooked request: the ``Hooked`` its hook sees, the task running it, its body."""

    __slots__ = (
        "_cookies",
        "_headers",
        "answers",
        "chunks",
        "continued",
        "ex",
        "gone",
        "hook",
        "limit",
        "size",
        "task",
        "waiter",
        "what",
        "who",
    )

    def __init__(self, ex: Exchange, hook: Hook, who: Client) -> None:
        self.ex = ex
        self.hook = hook
        self.who = who
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = ex.body_bound
        self.what = "The request body"
        self.waiter: asyncio.Future[None] | None = None
        self.continued = False
        self.gone = False
        self.answers: list[WireAnswer] = []
        self.task: asyncio.Task[None] | None = None
        self._headers: CIMultiDictProxy[str] | None = None
        self._cookies: dict[str, str] | None = None

    # --- the exchange's side ---------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def on_body(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size >= self.limit:
            self.ex.client.gate.pause(Reason.HOOK)
        if self.size > self.limit:
            self._wake(BodyTooLarge(f"{self.what} exceeds {self.limit} bytes"))

    def on_complete(self) -> None:
        self._wake(None)

    def client_gone(self) -> None:
        self.gone = True
        self._wake(ClientGone())

    def _wake(self, exc: KratosHooksError | None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    async def _run(self) -> None:
        ex = self.ex
        try:
            reply = await self.hook(self)
        except ClientGone:
            return
        except KratosHooksError as exc:
            ex.reply_error(exc)
        except Exception:
            log.exception("unhandled error", extra={"path": ex.view.path})
            ex.reply_error(KratosHooksError())
        else:
            self._write(reply)
        finally:
            for answer in self.answers:
                if answer.conn is not None and answer.conn.sink is answer:
                    answer.discard()

    # --- Hooked ----------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.ex.method.decode("latin-1")

    @property
    def view(self) -> RequestView:
        return self.ex.view

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = _text_headers(self.ex.headers)
        return self._headers

    @property
    def client_ip(self) -> str:
        return self.who.ip.decode("latin-1")

    @property
    def request_id(self) -> str:
        return self.ex.rid.decode("latin-1")

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            self._cookies = {}
            for header in self.headers.getall("Cookie", ()):
                for part in header.split(";"):
                    key, sep, value = part.strip().partition("=")
                    if sep:
                        self._cookies.setdefault(key.strip(), value.strip().strip('"'))
        return self._cookies.get(name) or None

    async def read(self, limit: int, what: str = "The request body") -> bytes:
        ex = self.ex
        if self.gone:
            raise ClientGone()
        too_large = BodyTooLarge(f"{what} exceeds {limit} bytes")
        if (ex.content_length is not None and ex.content_length > limit) or self.size > limit:
            raise too_large
        if not ex.req_done:
            self.limit, self.what = limit, what
            if ex.expect and not self.continued:
                self.continued = True
                ex.client.write_interim()
            self.waiter = asyncio.get_running_loop().create_future()
            ex.client.gate.resume(Reason.HOOK)
            await self.waiter
        return b"".join(self.chunks)

    async def forward(self, body: bytes | None, *, limit: int = ANSWER_LIMIT) -> Answer:
        ex = self.ex
        head = request_head(
            ex.method,
            ex.target,
            ex.headers,
            ex.client.listener.origin,
            self.who,
            ex.rid,
            length=len(body) if body is not None else None,
            drop=FRAMING if body is None else frozenset(),
        )
        return await self._exchange(head + (body or b""), limit, head_only=ex.head_only)

    async def fetch(
        self, path_qs: str, *, accept: str = "application/json", limit: int = ANSWER_LIMIT
    ) -> Answer | None:
        ex = self.ex
        head = request_head(
            b"GET",
            path_qs.encode("latin-1"),
            ex.headers,
            ex.client.listener.origin,
            self.who,
            ex.rid,
            drop=_FETCH_DROP,
            extra=((b"Accept", accept.encode("latin-1")),),
        )
        try:
            return await self._exchange(head, limit, head_only=False)
        except KratosHooksError as exc:
            log.warning("a fetch on the caller's behalf failed", extra={"error": exc.error_id})
            return None

    async def _exchange(self, data: bytes, limit: int, *, head_only: bool) -> WireAnswer:
        listener = self.ex.client.listener
        answer = WireAnswer(data, limit, head_only=head_only)
        self.answers.append(answer)
        started = time.perf_counter()
        listener.pool.acquire(answer)
        try:
            await answer.waiter
        except KratosHooksError:
            listener.observer.upstream_error(answer.kind or "reset")
            raise
        listener.observer.upstream_latency(self.ex.view.label, started)
        self.ex.upstream_status = answer.status
        return answer

    # --- the reply -------------------------------------------------------------------------
    def _write(self, reply: Reply) -> None:
        ex = self.ex
        if ex.finished or ex.gone:
            return
        if reply.answer is None:
            self._own(reply)
        elif isinstance(reply.answer, WireAnswer):
            self._relay(reply.answer)
        else:
            raise TypeError("Reply.relay takes an answer of this request's forward or fetch")

    def _own(self, reply: Reply) -> None:
        ex = self.ex
        client = ex.client
        ex.keep_alive = ex.keep_alive and ex.req_done and not client.listener.draining
        ex.status = reply.status
        ex.resp = ResponseHead(b"", None, False, False)
        head = own_head(reply.status, reply.headers.items(), len(reply.body), ex.rid)
        client.out += (head, connection_end(ex.keep_alive, ex.http10))
        if not ex.head_only and reply.status not in (204, 304):
            client.out.append(reply.body)
            ex.bytes_sent = len(reply.body)
        client.exchange_done(ex)

    def _relay(self, answer: WireAnswer) -> None:
        ex = self.ex
        ex.begin_response(answer.status, answer.reason, answer.raw_headers)
        for piece in answer.chunks:
            ex.on_body(piece)
        answer.chunks = []
        if answer.complete:
            ex.on_complete()
            return
        conn = answer.conn
        if answer.broken or conn is None or conn.closed:
            ex.client.abort(ex)
            return
        answer.conn = None
        conn.sink = ex  # the rest streams as on the pass-through path
        ex.up = conn
        ex.client.flush()
        if not ex.client.w_paused_at:
            conn.resume_reading()
