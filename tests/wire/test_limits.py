"""Resource limits of the public listener (issue 13's table): slow clients never hold
upstream connections, every deadline closes what it bounds, every bound answers 503 in
Kratos' shape instead of hanging."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.kratos_standin.schema import validate
from tests.support.rawhttp import raw_request
from tests.wire.conftest import Wire, WireFactory, url_of

GET = "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close"


async def opened(port: int, n: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(n):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
    return writers


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


@pytest.mark.slow
async def test_300_slow_uploads_leave_a_normal_request_its_200(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(url_of(echo), UPSTREAM_POOL_SIZE="8")
    writers = await opened(wire.port, 300)
    for writer in writers:
        writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nx")
    await asyncio.sleep(0.5)
    for writer in writers:
        writer.write(b"x")
    started = time.monotonic()
    response = await raw_request(wire.port, GET)
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert elapsed < 0.5
    assert wire.listener.pool.open <= 1  # the uploads hold none: each is still being buffered
    for writer in writers:
        writer.close()


async def test_a_slowloris_head_is_closed_by_the_header_deadline(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(url_of(echo), CLIENT_HEADER_TIMEOUT="0.6")
    conns = [await asyncio.open_connection("127.0.0.1", wire.port) for _ in range(200)]
    started = time.monotonic()
    for _, writer in conns:
        writer.write(b"GET / HTTP/1.1\r\nX-A: ")
    for _ in range(3):
        await asyncio.sleep(0.1)
        for _, writer in conns:
            if not writer.is_closing():
                writer.write(b"a")
    outs = await asyncio.gather(*(closed_by_peer(reader, 3) for reader, _ in conns))
    assert time.monotonic() - started < 2.5
    assert all(out.startswith(b"HTTP/1.1 408 ") for out in outs)
    for _, writer in conns:
        writer.close()
    await asyncio.sleep(0.2)
    assert not wire.listener.clients
    assert (await raw_request(wire.port, GET)).status == 200


async def test_an_idle_keep_alive_connection_is_closed(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(url_of(echo), CLIENT_IDLE_TIMEOUT="0.4")
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    started = time.monotonic()
    await closed_by_peer(reader, 3)
    assert 0.3 < time.monotonic() - started < 2
    writer.close()


async def test_a_stalled_body_is_408_and_forwards_nothing(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(url_of(echo), CLIENT_BODY_TIMEOUT="0.4")
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    out = await closed_by_peer(reader, 3)
    writer.close()
    assert out.startswith(b"HTTP/1.1 408 ")
    validate("errorGeneric", orjson.loads(out.partition(b"\r\n\r\n")[2]))
    assert wire.listener.pool.open == 0


async def test_a_streamed_upload_below_the_minimum_rate_releases_its_upstream(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(
        url_of(echo), CLIENT_BODY_MIN_RATE="100000", CLIENT_BODY_RATE_GRACE="0.3"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", wire.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n")
    writer.write(b"x" * 70_000)  # past the buffer: an upstream connection is taken
    await writer.drain()
    await asyncio.sleep(0.2)
    assert len(wire.listener.pool.busy) == 1
    for _ in range(20):
        if writer.is_closing():
            break
        writer.write(b"x")
        await asyncio.sleep(0.1)
    out = await closed_by_peer(reader, 3)
    writer.close()
    assert out.startswith(b"HTTP/1.1 408 ")
    assert not wire.listener.pool.busy


async def test_waiting_for_a_pool_connection_is_bounded_503(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(url_of(echo), UPSTREAM_POOL_SIZE="1", UPSTREAM_POOL_TIMEOUT="0.3")
    slow = asyncio.ensure_future(
        raw_request(wire.port, "GET /slow?delay=1.5 HTTP/1.1\r\nHost: h\r\nConnection: close")
    )
    await asyncio.sleep(0.2)
    started = time.monotonic()
    waited = await raw_request(wire.port, GET)
    assert waited.status == 503
    assert time.monotonic() - started < 1.2
    validate("errorGeneric", orjson.loads(waited.body))
    assert (await slow).status == 200


async def test_connection_bounds_answer_503_in_kratos_shape(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire: Wire = await start_wire(url_of(echo), MAX_CONNECTIONS="5")
    held = await opened(wire.port, 5)
    await asyncio.sleep(0.05)
    refused = await raw_request(wire.port, GET)
    assert refused.status == 503
    assert orjson.loads(refused.body)["error"]["id"] == "too_many_connections"
    for writer in held:
        writer.close()
    await asyncio.sleep(0.1)
    assert (await raw_request(wire.port, GET)).status == 200
    per_ip = await start_wire(url_of(echo), MAX_CONNECTIONS_PER_IP="2")
    held = await opened(per_ip.port, 2)
    await asyncio.sleep(0.05)
    assert (await raw_request(per_ip.port, GET)).status == 503
    for writer in held:
        writer.close()


async def test_behind_a_trusted_proxy_the_bound_is_per_forwarded_client(
    echo: TestServer, start_wire: WireFactory
) -> None:
    wire = await start_wire(url_of(echo), TRUSTED_PROXIES="127.0.0.0/8", MAX_CONNECTIONS_PER_IP="1")
    slow = asyncio.ensure_future(
        raw_request(
            wire.port,
            "GET /slow?delay=0.5 HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1\r\n"
            "Connection: close",
        )
    )
    await asyncio.sleep(0.1)
    same = await raw_request(
        wire.port, "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.1\r\nConnection: close"
    )
    other = await raw_request(
        wire.port, "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.2\r\nConnection: close"
    )
    assert (same.status, other.status, (await slow).status) == (503, 200, 200)
    assert not wire.listener.per_ip  # every hold released
