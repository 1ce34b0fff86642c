"""A lean Redis connection for the hot path's scripts: one socket, commands pipelined, replies
read by hiredis.

The login guard makes two Redis round trips per login (judge, then settle). Through
redis-py each costs about 68 µs of client CPU (pool checkout, command packing and reply
parsing in Python, a lock per connection — measured with ``bench/redis_calls_bench.py``);
coredis costs more, RESP3 and redis-py's hiredis parser no less. Here the command is packed
and the reply parsed by hiredis (C), every command issued during one loop turn goes out in
one write, and replies are matched to callers in order on the one connection — about 14 µs a
call. It speaks only what those scripts need (``EVALSHA`` with its ``NOSCRIPT`` fallback,
plain commands) over ``redis://``, ``rediss://`` and ``unix://`` URLs; everything else, and
Sentinel or Cluster deployments, stays on redis-py.

A lost connection fails the calls in flight (``ConnectionError``, which ``redis_call``
translates like any Redis failure) and is made again by the next call. A caller that gave up
(its ``redis_call`` bound passed) leaves its reply to be read and dropped in order.

A call given a ``timeout`` is bounded by the pipe itself instead of ``asyncio.timeout`` (whose
context manager, a timer and a task look-up per call, cost more than the rest of the call):
its deadline joins a queue that one timer, armed while calls are waiting, checks every
``SWEEP_EVERY`` seconds; a reply still missing then fails the call with ``TimeoutError``. So a
bound is kept within ``SWEEP_EVERY`` — and, as deadlines are checked in the order the calls
were made, a shorter bound behind a longer one waits for it.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from typing import Any, cast

import hiredis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url

from proxy.kernel.redis import CALL_TIMEOUT

SWEEP_EVERY = 0.025  # how often the deadlines of calls with a ``timeout`` are checked


class _Replies(asyncio.Protocol):
    """One connection: writes coalesced per loop turn, replies in order to their futures."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._out: list[bytes] = []
        self._flush_soon = False
        self._deadlines: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self._sweep: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self._deadlines.clear()
        error = ConnectionError(f"redis connection lost ({type(exc).__name__ if exc else 'EOF'})")
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future = self._waiting.popleft()
            if future.done():
                continue  # its caller stopped waiting
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def send(self, command: tuple[Any, ...], timeout: float | None = None) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        if self.lost or self.transport is None:
            future.set_exception(ConnectionError("redis connection lost"))
            return future
        self._waiting.append(future)
        self._out.append(hiredis.pack_command(command))
        if not self._flush_soon:
            self._flush_soon = True
            self._loop.call_soon(self._flush)
        if timeout is not None:
            self._deadlines.append((self._loop.time() + timeout, future))
            if self._sweep is None:
                self._sweep = self._loop.call_later(SWEEP_EVERY, self._expire)
        return future

    def _expire(self) -> None:
        """Fail the calls whose deadline has passed; re-arm while any is still waiting."""
        self._sweep = None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines:
            deadline, future = deadlines[0]
            if not future.done():
                if deadline > now:
                    break
                future.set_exception(TimeoutError("redis did not answer in time"))
            deadlines.popleft()
        if deadlines:
            self._sweep = self._loop.call_later(SWEEP_EVERY, self._expire)

    def _flush(self) -> None:
        self._flush_soon = False
        if self.transport is not None and not self.lost and self._out:
            self.transport.write(b"".join(self._out))
        self._out.clear()


class RedisPipe:
    """Commands to one Redis over one pipelined connection, made on first use."""

    def __init__(self, url: str, *, connect_timeout: float = CALL_TIMEOUT) -> None:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        self._path: str | None = options.get("path")
        self._host = options.get("host", "localhost")
        self._port = int(options.get("port", 6379))
        self._ssl = (
            ssl.create_default_context()
            if options.get("connection_class") is SSLConnection
            else None
        )
        self._username: str | None = options.get("username")
        self._password: str | None = options.get("password")
        self._db = int(options.get("db", 0) or 0)
        self._connect_timeout = connect_timeout
        self._replies: _Replies | None = None
        self._connecting: asyncio.Lock | None = None
        self._scripts: dict[str, bytes] = {}
        assert options.get("connection_class") in (None, SSLConnection, UnixDomainSocketConnection)

    @staticmethod
    def serves(url: str) -> bool:
        """Whether this URL is one ``RedisPipe`` speaks (a single server)."""
        return url.startswith(("redis://", "rediss://", "unix://"))

    async def _connection(self) -> _Replies:
        replies = self._replies
        if replies is not None and not replies.lost:
            return replies
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        lock = self._connecting
        # Explicit acquire / release rather than ``async with``: a compiled coroutine
        # (``proxy.native``) awaits nothing while an exception propagates.
        await lock.acquire()
        try:
            if self._replies is None or self._replies.lost:
                self._replies = await asyncio.wait_for(self._connect(), self._connect_timeout)
            return self._replies
        finally:
            lock.release()

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        if self._path is not None:
            _, replies = await loop.create_unix_connection(lambda: _Replies(loop), self._path)
        else:
            _, replies = await loop.create_connection(
                lambda: _Replies(loop), self._host, self._port, ssl=self._ssl
            )
        hello: list[asyncio.Future[Any]] = []
        if self._password:
            auth = (
                ("AUTH", self._username, self._password)
                if self._username
                else ("AUTH", self._password)
            )
            hello.append(replies.send(auth))
        if self._db:
            hello.append(replies.send(("SELECT", self._db)))
        for reply in hello:
            await reply
        return replies

    async def call(self, *command: Any, timeout: float | None = None) -> Any:
        """One command's reply (``hiredis.ReplyError`` for an error reply); with ``timeout``,
        ``TimeoutError`` when none came in that long (see the module's docstring)."""
        replies = self._replies
        if replies is None or replies.lost:
            replies = await self._connection()
        return await replies.send(command, timeout)

    async def evalsha(
        self, source: str, keys: list[str], args: list[Any], *, timeout: float | None = None
    ) -> Any:
        """Run the Lua ``source`` by its SHA1, loading it once when the server lacks it."""
        sha = self._scripts.get(source)
        if sha is None:
            sha = self._scripts[source] = hashlib.sha1(source.encode()).hexdigest().encode()
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args, timeout=timeout)
        except hiredis.ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.call("EVAL", source, len(keys), *keys, *args, timeout=timeout)

    async def close(self) -> None:
        replies, self._replies = self._replies, None
        if replies is not None and replies.transport is not None:
            replies.transport.close()
