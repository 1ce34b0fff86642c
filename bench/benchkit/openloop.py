"""Open-loop latency at a fixed request rate (what ``wrk2 -R`` does; Debian has no wrk2).

Requests are issued on a fixed schedule whatever the server does: a slow answer does not
delay the next request (no coordinated omission). Each request's latency runs from the
moment the schedule released it — if every connection is busy it waits in a backlog, and
that wait counts — to the last byte of its response. Timer jitter of the client itself
(the event loop wakes up with millisecond granularity) is not counted, because the same
request is released late for every target alike and it says nothing about the server.

HTTP/1.1 keep-alive over raw asyncio transports, one request in flight per connection:
far less client CPU per request than a general HTTP client, so the client is not what is
measured.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from benchkit.processes import freeze_heap

_DRAIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class OpenLoopResult:
    target_rps: float
    achieved_rps: float
    samples: int
    errors: int
    backlogged: int
    unfinished: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def build_request(
    method: str, host: str, path: str, body: bytes = b"", content_type: str = ""
) -> bytes:
    """A complete HTTP/1.1 keep-alive request."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: kh-bench"]
    if body or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}")
    if content_type:
        head.append(f"Content-Type: {content_type}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


def _chunked_end(buf: bytearray, pos: int) -> int | None:
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
        pos = line_end + 2
        if size == 0:
            while True:  # optional trailers, then the empty line
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                if line_end == pos:
                    return pos + 2
                pos = line_end + 2
        pos += size + 2
        if pos > len(buf):
            return None


def response_end(buf: bytearray) -> tuple[int, int] | None:
    """(offset after the complete response, status) or None while it is incomplete."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    body_start = head_end + 4
    if chunked:
        end = _chunked_end(buf, body_start)
        return None if end is None else (end, status)
    end = body_start + length
    return (end, status) if len(buf) >= end else None


class _Connection(asyncio.Protocol):
    def __init__(self, on_response: Callable[[_Connection, int], None]) -> None:
        self._on_response = on_response
        self._buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.released = 0.0
        self.record = False
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, released: float, record: bool) -> None:
        assert self.transport is not None
        self.released = released
        self.record = record
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        done = response_end(self._buf)
        if done is None:
            return
        end, status = done
        del self._buf[:end]
        self._on_response(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class _Client:
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.idle: deque[_Connection] = deque()
        self.backlog: deque[tuple[float, bool]] = deque()
        self.busy: set[_Connection] = set()
        self.latencies: list[float] = []
        self.errors = 0
        self.backlogged = 0
        self.last_done = 0.0
        self.all_done = asyncio.Event()

    def submit(self, released: float, record: bool) -> None:
        if self.idle:
            conn = self.idle.pop()
            self.busy.add(conn)
            conn.send(self.request, released, record)
        else:
            self.backlogged += record
            self.backlog.append((released, record))

    def on_response(self, conn: _Connection, status: int) -> None:
        now = time.perf_counter()
        if conn.record:
            self.last_done = now
            self.latencies.append(now - conn.released)
            if status >= 400:
                self.errors += 1
        if self.backlog:
            released, record = self.backlog.popleft()
            conn.send(self.request, released, record)
            return
        self.busy.discard(conn)
        self.idle.append(conn)
        if not self.busy:
            self.all_done.set()

    def on_lost(self, conn: _Connection) -> None:
        if conn in self.busy:
            self.busy.discard(conn)
            self.errors += 1
        elif conn in self.idle:
            self.idle.remove(conn)


def _forget(client: _Client, conn: _Connection, _lost: asyncio.Future[None]) -> None:
    client.on_lost(conn)


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def _run(
    host: str,
    port: int,
    request: bytes,
    rate: float,
    seconds: float,
    warmup: float,
    connections: int,
) -> OpenLoopResult:
    loop = asyncio.get_running_loop()
    client = _Client(request)
    conns: list[_Connection] = []
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: _Connection(client.on_response), host, port)
        conn.lost.add_done_callback(functools.partial(_forget, client, conn))
        conns.append(conn)
        client.idle.append(conn)
    try:
        warm_n = int(rate * warmup)
        total = warm_n + int(rate * seconds)
        start = time.perf_counter()
        sent = 0
        while sent < total:
            now = time.perf_counter()
            due = min(total, int((now - start) * rate) + 1)
            while sent < due:
                client.submit(now, sent >= warm_n)
                sent += 1
            # Always yield, even when behind schedule: answers must be read meanwhile.
            await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
        unfinished = 0
        if client.busy or client.backlog:
            client.all_done.clear()
            try:
                await asyncio.wait_for(client.all_done.wait(), _DRAIN_SECONDS)
            except TimeoutError:
                # Still queued after the drain time: the target fell far behind.
                unfinished = len(client.busy) + sum(r for _, r in client.backlog)
    finally:
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
    ordered = sorted(client.latencies)
    # From the first measured release to the last measured answer.
    window = client.last_done - (start + warmup)
    return OpenLoopResult(
        target_rps=rate,
        achieved_rps=len(ordered) / window if window > 0 else 0.0,
        samples=len(ordered),
        errors=client.errors,
        backlogged=client.backlogged,
        unfinished=unfinished,
        p50_ms=_percentile(ordered, 50) * 1000,
        p90_ms=_percentile(ordered, 90) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] if ordered else math.nan) * 1000,
    )


def run(
    host: str,
    port: int,
    request: bytes,
    *,
    rate: float,
    seconds: float,
    warmup: float = 1.0,
    connections: int = 32,
) -> OpenLoopResult:
    """Send ``request`` at ``rate`` per second for ``warmup + seconds``; latency of the rest."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    # The client's own full collections would stall it and show up as server latency.
    freeze_heap()
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(_run(host, port, request, rate, seconds, warmup, connections))
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_run(host, port, request, rate, seconds, warmup, connections))
    finally:
        gc.unfreeze()
