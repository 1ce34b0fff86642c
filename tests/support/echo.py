"""A byte-level upstream for proxy tests: it reports exactly what reached it and answers with
exact bytes, streaming both ways so gigabyte bodies cost it no memory."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from dataclasses import dataclass, field

from aiohttp import web

GZIP_BODY = gzip.compress(b'{"hello": "world"}' * 100, mtime=0)
PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern_bytes(n: int) -> bytes:
    """The first ``n`` bytes of the repeating pattern the upstream sends."""
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


@dataclass
class EchoState:
    disconnects: int = 0
    requests: list[dict[str, object]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


ECHO_STATE = web.AppKey("echo_state", EchoState)


def _text_headers(request: web.Request) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]


async def echo(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        size += len(chunk)
    report: dict[str, object] = {
        "method": request.method,
        "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in _text_headers(request)],
        "body_sha256": digest.hexdigest(),
        "body_size": size,
        "peer": request.remote,
    }
    request.app[ECHO_STATE].requests.append(report)
    return web.json_response(report)


async def stream_bytes(request: web.Request) -> web.StreamResponse:
    """``?n=`` bytes of the pattern; ``&chunked=1`` without a Content-Length."""
    n = int(request.query.get("n", "1024"))
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("chunked") == "1":
        response.enable_chunked_encoding()
    else:
        response.content_length = n
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    sent = 0
    try:
        while sent < n:
            piece = PATTERN[: min(len(PATTERN), n - sent)]
            await response.write(piece)
            sent += len(piece)
    except (ConnectionError, asyncio.CancelledError):
        # aiohttp either fails the write or cancels the handler once the peer is gone.
        request.app[ECHO_STATE].disconnects += 1
        request.app[ECHO_STATE].disconnected.set()
        raise
    await response.write_eof()
    return response


async def gzipped(request: web.Request) -> web.Response:
    return web.Response(
        body=GZIP_BODY,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


async def cookies(request: web.Request) -> web.Response:
    response = web.Response(text="ok")
    response.headers.add("Set-Cookie", "first=1; Path=/")
    response.headers.add("Set-Cookie", "second=2; Path=/; HttpOnly")
    response.headers.add("Set-Cookie", "third=3; Path=/; Secure")
    return response


async def redirect(request: web.Request) -> web.Response:
    return web.Response(status=303, headers={"Location": "http://ui.example/login?flow=abc"})


async def hop(request: web.Request) -> web.Response:
    return web.Response(
        text="ok",
        headers={"Connection": "X-Hop-Only", "X-Hop-Only": "secret", "X-End-To-End": "kept"},
    )


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "1")))
    return web.Response(text="finally")


async def truncate(request: web.Request) -> web.StreamResponse:
    """Promises 100 000 bytes, sends 10, and hangs up."""
    response = web.StreamResponse()
    response.content_length = 100_000
    await response.prepare(request)
    await response.write(b"0123456789")
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return response


def create_echo_app() -> web.Application:
    app = web.Application(handler_args={"auto_decompress": False})
    app[ECHO_STATE] = EchoState()
    app.router.add_get("/bytes", stream_bytes)
    app.router.add_route("GET", "/gzip", gzipped)
    app.router.add_route("GET", "/cookies", cookies)
    app.router.add_route("GET", "/redirect", redirect)
    app.router.add_route("GET", "/hop", hop)
    app.router.add_route("GET", "/slow", slow)
    app.router.add_route("GET", "/truncate", truncate)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
