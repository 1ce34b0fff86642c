"""The wire data path's pass-through, byte for byte: the edge cases the measured sketch hit
(``shared/perf``), each against an upstream that reports what reached it or a raw socket that
answers exactly what the test says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.kratos_standin.schema import validate
from tests.support.echo import ECHO_STATE, pattern_bytes
from tests.support.rawhttp import dechunk, raw_request
from tests.wire.conftest import Wire, WireFactory

RawUpstream = Callable[[bytes], Awaitable[str]]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[RawUpstream]:
    """``await raw_upstream(answer)``: a one-shot upstream that reads a request head and
    writes ``answer`` verbatim, then closes; the URL to point the listener at."""
    servers: list[asyncio.Server] = []

    async def make(answer: bytes) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield make
    for server in servers:
        server.close()


def report_of(body: bytes) -> dict[str, object]:
    return orjson.loads(body)  # type: ignore[no-any-return]


async def exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_pipelined_requests_are_answered_in_order(wire: Wire) -> None:
    data = (
        b"".join(f"GET /n{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(5))
        + b"GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    out = await exchange(wire.port, data)
    paths = [p.split(b'"')[0] for p in out.split(b'"raw_path": "')[1:]]
    assert paths == [b"/n0", b"/n1", b"/n2", b"/n3", b"/n4", b"/last"]


async def test_keep_alive_reuses_one_upstream_connection(wire: Wire, echo: TestServer) -> None:
    data = (
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n" * 3
        + b"GET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    out = await exchange(wire.port, data)
    assert out.count(b"HTTP/1.1 200 OK") == 4
    assert wire.listener.pool.open == 1


async def test_expect_100_continue_is_answered_and_not_forwarded(wire: Wire) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    writer.write(
        b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    report = report_of(out.partition(b"\r\n\r\n")[2])
    assert report["body_size"] == 5
    assert "expect" not in [k.lower() for k, _ in report["headers"]]  # type: ignore[attr-defined]


async def test_request_trailers_never_reach_upstream(wire: Wire) -> None:
    response = await raw_request(
        wire.port,
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close",
        b"5\r\nhello\r\n0\r\nX-Trailer: sneaky\r\n\r\n",
    )
    report = report_of(
        dechunk(response.body) if response.header("Transfer-Encoding") else response.body
    )
    assert report["body_size"] == 5
    assert "x-trailer" not in [k.lower() for k, _ in report["headers"]]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "head",
    [
        "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
        "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6",
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip",
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip",
        "GET /x HTTP/1.1\r\nHost: h\r\n folded: value",
    ],
)
async def test_request_smuggling_forms_are_refused_unforwarded(
    wire: Wire, echo: TestServer, head: str
) -> None:
    response = await raw_request(wire.port, head + "\r\nConnection: close", b"hello")
    assert response.status == 400
    validate("errorGeneric", orjson.loads(response.body))
    assert echo.app[ECHO_STATE].requests == []


async def test_endless_header_line_is_refused_431_without_being_held(wire: Wire) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ")
    sent = 0
    try:
        while sent < 4 * 1024 * 1024:
            writer.write(b"a" * 65536)
            await writer.drain()
            sent += 65536
    except ConnectionError:
        pass
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert out.startswith(b"HTTP/1.1 431 ")
    assert sent < 4 * 1024 * 1024 or b"431" in out


async def test_upgrade_request_is_answered_as_plain_http_then_closed(wire: Wire) -> None:
    out = await exchange(
        wire.port,
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"\x81\x05hello",
    )
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in head
    names = [k.lower() for k, _ in report_of(body)["headers"]]  # type: ignore[attr-defined]
    assert "upgrade" not in names and "connection" not in names


async def test_interim_103_is_dropped_final_answer_kept(
    start_wire: WireFactory, raw_upstream: RawUpstream
) -> None:
    url = await raw_upstream(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    wire = await start_wire(url)
    response = await raw_request(wire.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert response.status == 200
    assert response.body == b"ok"
    assert response.header("Link") is None


async def test_close_delimited_answer_is_rechunked_for_http11(
    start_wire: WireFactory, raw_upstream: RawUpstream
) -> None:
    url = await raw_upstream(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
    wire = await start_wire(url)
    response = await raw_request(wire.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.body.endswith(b"0\r\n\r\n")
    assert dechunk(response.body) == b"until the end"


async def test_close_delimited_answer_stays_close_delimited_for_http10(
    start_wire: WireFactory, raw_upstream: RawUpstream
) -> None:
    url = await raw_upstream(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    wire = await start_wire(url)
    response = await raw_request(wire.port, "GET / HTTP/1.0\r\nHost: h")
    assert response.header("Transfer-Encoding") is None
    assert response.body == b"until the end"


async def test_truncated_chunked_answer_aborts_the_client(
    start_wire: WireFactory, raw_upstream: RawUpstream
) -> None:
    url = await raw_upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    wire = await start_wire(url)
    response = await raw_request(wire.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert response.status == 200
    assert not response.body.endswith(b"0\r\n\r\n")  # never a clean end


@pytest.mark.parametrize("status", [204, 304])
async def test_bodyless_statuses_keep_the_connection(
    start_wire: WireFactory, raw_upstream: RawUpstream, status: int
) -> None:
    url = await raw_upstream(b'HTTP/1.1 %d X\r\nETag: "e"\r\n\r\n' % status)
    wire = await start_wire(url)
    response = await raw_request(wire.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert response.status == status
    assert response.body == b""
    assert response.header("Transfer-Encoding") is None


async def test_head_then_get_on_one_connection(wire: Wire) -> None:
    out = await exchange(
        wire.port,
        b"HEAD /bytes?n=100 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /bytes?n=100 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    first, _, rest = out.partition(b"\r\n\r\n")
    assert b"Content-Length: 100" in first
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert rest.partition(b"\r\n\r\n")[2] == pattern_bytes(100)


async def test_upstream_down_then_timeout_in_kratos_shape(
    start_wire: WireFactory, echo: TestServer
) -> None:
    down = await start_wire("http://127.0.0.1:9")
    response = await raw_request(down.port, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert response.status == 502
    validate("errorGeneric", orjson.loads(response.body))
    slow = await start_wire(str(echo.make_url("")).rstrip("/"), UPSTREAM_READ_TIMEOUT="0.3")
    response = await raw_request(
        slow.port, "GET /slow?delay=2 HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert response.status == 504
    assert orjson.loads(response.body)["error"]["id"] == "upstream_timeout"


async def test_slow_reader_pauses_upstream_and_loses_nothing(wire: Wire) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    n = 8 * 1024 * 1024
    writer.write(f"GET /bytes?n={n} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: %d" % n in head
    got = 0
    while got < n:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk
        got += len(chunk)
        if got < 1024 * 1024:
            await asyncio.sleep(0.01)  # slower than the upstream for the first MiB
    writer.close()
    assert got == n


async def test_drain_closes_idle_connections_and_finishes_what_is_in_flight(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(str(echo.make_url("")).rstrip("/"))
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", wire.port)
    idle_writer.write(b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
    await idle_reader.readuntil(b"\r\n\r\n")
    busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", wire.port)
    busy_writer.write(b"GET /slow?delay=0.5 HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.sleep(0.1)
    stopping = asyncio.ensure_future(wire.listener.stop(5))
    await asyncio.sleep(0.1)
    assert await asyncio.wait_for(idle_reader.read(), 1) == b""  # closed at once
    answer = await asyncio.wait_for(busy_reader.read(), 3)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer
    assert answer.endswith(b"finally")
    await stopping
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", wire.port)
    idle_writer.close()
    busy_writer.close()
