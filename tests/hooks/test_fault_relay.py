"""The fault-injecting relay the outbox tests stall brokers with: ``pause()`` holds bytes
(nothing lost, the connection open), ``resume()`` lets them through in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.relay import FaultyRelay


class Upstream:
    """A TCP server that records what reached it and answers each chunk with ``ok:<chunk>``."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while data := await reader.read(1024):
                self.received += data
                writer.write(b"ok:" + data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.transport.abort()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        if self.handlers:
            await asyncio.wait(self.handlers, timeout=1.0)

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


@pytest.fixture
async def upstream_relay() -> AsyncIterator[tuple[Upstream, FaultyRelay]]:
    upstream = Upstream()
    port = await upstream.start()
    relay = await FaultyRelay("127.0.0.1", port).start()
    yield upstream, relay
    await relay.close()
    await upstream.close()


async def read_within(reader: asyncio.StreamReader, timeout: float) -> bytes | None:
    try:
        return await asyncio.wait_for(reader.read(1024), timeout)
    except TimeoutError:
        return None


async def test_pause_holds_both_ways_and_resume_delivers_in_order(
    upstream_relay: tuple[Upstream, FaultyRelay],
) -> None:
    upstream, relay = upstream_relay
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    writer.write(b"a")
    assert await read_within(reader, 1.0) == b"ok:a"
    relay.pause()
    writer.write(b"b")
    await writer.drain()
    assert await read_within(reader, 0.5) is None  # no answer, and no EOF either
    assert bytes(upstream.received) == b"a"
    relay.resume()
    assert await read_within(reader, 1.0) == b"ok:b"
    assert bytes(upstream.received) == b"ab"
    writer.transport.abort()


async def test_pause_of_answers_only_lets_requests_through(
    upstream_relay: tuple[Upstream, FaultyRelay],
) -> None:
    upstream, relay = upstream_relay
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    relay.pause(up=False)
    writer.write(b"x")
    await writer.drain()
    assert await read_within(reader, 0.5) is None
    assert bytes(upstream.received) == b"x"
    relay.resume()
    assert await read_within(reader, 1.0) == b"ok:x"
    writer.transport.abort()


async def test_cut_during_a_pause_loses_what_was_held(
    upstream_relay: tuple[Upstream, FaultyRelay],
) -> None:
    upstream, relay = upstream_relay
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    relay.pause()
    writer.write(b"lost")
    await writer.drain()
    await asyncio.sleep(0.2)
    relay.cut()
    with contextlib.suppress(ConnectionError):  # EOF or a reset: closed either way
        assert await read_within(reader, 1.0) == b""
    relay.restore()
    await asyncio.sleep(0.2)
    assert bytes(upstream.received) == b""
    writer.transport.abort()
