"""Hooked routes on the wire data path: small hooks of the tests' own, driving every part of
``kernel.hooked.Hooked`` (read, forward, fetch, cookie, relay, own replies, errors)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp.test_utils import TestServer

from proxy.kernel.errors import BadRequest
from proxy.kernel.hooked import Hooked, HookTable, Reply
from tests.kratos_standin.schema import validate
from tests.parity.forms import LOGIN_FORMS, REFUSED_FORMS
from tests.support.echo import ECHO_STATE, pattern_bytes
from tests.support.rawhttp import dechunk, raw_request
from tests.wire.conftest import Wire, WireFactory, url_of

seen: list[dict[str, object]] = []


async def relay_body(request: Hooked) -> Reply:
    body = await request.read(100, "The test body")
    seen.append({"body": body, "ip": request.client_ip, "route": request.view.route})
    return Reply.relay(await request.forward(body))


async def own(request: Hooked) -> Reply:
    return Reply.own(
        418,
        b'{"teapot":true}',
        {"Content-Type": "application/json", "Content-Length": "1"},
    )


async def refuse(request: Hooked) -> Reply:
    raise BadRequest("The test refuses this")


async def broken(request: Hooked) -> Reply:
    raise RuntimeError("a bug")


async def small_answer(request: Hooked) -> Reply:
    answer = await request.forward(None, limit=10)
    seen.append({"complete": answer.complete, "body": answer.body, "status": answer.status})
    return Reply.relay(answer)


async def fetch_and_tell(request: Hooked) -> Reply:
    answer = await request.fetch("/report?x=1")
    assert answer is not None
    return Reply.own(200, answer.body, {"X-Cookie": request.cookie("session") or "-"})


async def wait_for_body(request: Hooked) -> Reply:
    try:
        await request.read(10_000)
    except BaseException as exc:
        seen.append({"raised": type(exc).__name__})
        raise
    return Reply.own(200)


def table() -> HookTable:
    hooks = HookTable()
    hooks.add("POST", "/self-service/login", relay_body)
    hooks.add("GET", "/own", own)
    hooks.add("GET", "/refuse", refuse)
    hooks.add("GET", "/broken", broken)
    hooks.add("GET", "/bytes", small_answer)
    hooks.add("GET", "/fetch", fetch_and_tell)
    hooks.add("POST", "/wait", wait_for_body)
    return hooks


@pytest.fixture
async def hooked(echo: TestServer, start_wire: WireFactory) -> Wire:
    seen.clear()
    return await start_wire(url_of(echo), hooks=table())


def upstream_report(body: bytes) -> dict[str, object]:
    return orjson.loads(body)  # type: ignore[no-any-return]


async def test_body_read_forwarded_with_its_length_and_relayed(
    hooked: Wire, echo: TestServer
) -> None:
    response = await raw_request(
        hooked.port,
        "POST //self-service/./login?flow=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close",
        b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: no\r\n\r\n",
    )
    assert response.status == 200
    report = upstream_report(response.body)
    assert report["raw_path"] == "//self-service/./login?flow=1"  # judged canonical, sent raw
    headers = [(k.lower(), v) for k, v in report["headers"]]  # type: ignore[attr-defined]
    assert ("content-length", "5") in headers
    assert "transfer-encoding" not in dict(headers) and "x-trailer" not in dict(headers)
    assert seen == [{"body": b"abcde", "ip": "127.0.0.1", "route": "/self-service/login"}]


ORIGIN_FORMS = [t for t in LOGIN_FORMS if t.startswith("/")]
ABSOLUTE_FORMS = [t for t in LOGIN_FORMS if not t.startswith("/")]


@pytest.mark.parametrize("target", ORIGIN_FORMS)
async def test_every_form_kratos_serves_as_login_reaches_the_hook(
    hooked: Wire, target: str
) -> None:
    """The forms Go's router serves as the login handler (proved against it in
    tests/parity/test_corpus.py) are judged by the hook on this path — none goes through
    unjudged — and Kratos still receives the target as the client sent it."""
    response = await raw_request(
        hooked.port,
        f"POST {target}?flow=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close",
        b"{}",
    )
    assert response.status == 200
    assert upstream_report(response.body)["raw_path"] == f"{target}?flow=1"
    assert seen == [{"body": b"{}", "ip": "127.0.0.1", "route": "/self-service/login"}]


@pytest.mark.parametrize("target", REFUSED_FORMS + ABSOLUTE_FORMS)
async def test_forms_kratos_refuses_are_refused_and_never_forwarded(
    hooked: Wire, target: str
) -> None:
    """What Go refuses, and the absolute forms it would serve as login but this listener does
    not judge (README, "What the guard judges"): 400 in Kratos' shape, nothing forwarded."""
    response = await raw_request(
        hooked.port,
        f"POST {target}?flow=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nConnection: close",
        b"{}",
    )
    assert response.status == 400
    assert b"raw_path" not in response.body
    assert seen == []


async def test_body_over_the_limit_is_413_and_never_forwarded(
    hooked: Wire, echo: TestServer
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hooked.port)
    writer.write(
        b"POST /self-service/login HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert out.startswith(b"HTTP/1.1 413 ")  # no 100 Continue first: the body is not wanted
    document = orjson.loads(out.partition(b"\r\n\r\n")[2])
    validate("errorGeneric", document)
    assert document["error"]["reason"] == "The test body exceeds 100 bytes"
    chunked = await raw_request(
        hooked.port,
        "POST /self-service/login HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close",
        b"64\r\n" + b"a" * 100 + b"\r\n1\r\nb\r\n0\r\n\r\n",
    )
    assert chunked.status == 413
    assert echo.app[ECHO_STATE].requests == []


async def test_own_reply_is_framed_and_the_connection_kept(hooked: Wire) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hooked.port)
    writer.write(
        b"GET /own HTTP/1.1\r\nHost: h\r\nX-Request-ID: mine-1\r\n\r\n"
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    )
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    first, _, rest = out.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 418 ")
    assert b"Content-Length: 15" in first and b"X-Request-ID: mine-1" in first
    assert rest.startswith(b'{"teapot":true}HTTP/1.1 200 ')


async def test_errors_a_hook_raises_are_answered_in_kratos_shape(hooked: Wire) -> None:
    refused = await raw_request(hooked.port, "GET /refuse HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert refused.status == 400
    assert orjson.loads(refused.body)["error"]["reason"] == "The test refuses this"
    bug = await raw_request(hooked.port, "GET /broken HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert bug.status == 500
    assert "a bug" not in bug.body.decode()
    validate("errorGeneric", orjson.loads(bug.body))


async def test_an_answer_larger_than_the_limit_is_relayed_whole(hooked: Wire) -> None:
    n = 300_000
    response = await raw_request(
        hooked.port, f"GET /bytes?n={n}&chunked=1 HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert response.status == 200
    assert dechunk(response.body) == pattern_bytes(n)
    assert seen == [{"complete": False, "body": pattern_bytes(10), "status": 200}]


async def test_fetch_goes_as_a_bodyless_json_get_with_the_callers_cookies(hooked: Wire) -> None:
    response = await raw_request(
        hooked.port,
        "GET /fetch HTTP/1.1\r\nHost: h\r\nCookie: session=abc; other=1\r\n"
        "Accept: text/html\r\nAccept-Encoding: gzip\r\nConnection: close",
    )
    assert response.header("X-Cookie") == "abc"
    report = upstream_report(response.body)
    assert report["method"] == "GET" and report["raw_path"] == "/report?x=1"
    headers = dict((k.lower(), v) for k, v in report["headers"])  # type: ignore[attr-defined]
    assert headers["accept"] == "application/json"
    assert headers["cookie"] == "session=abc; other=1"
    assert "accept-encoding" not in headers and "content-length" not in headers


async def test_a_client_gone_mid_body_is_a_499_and_the_hook_learns_it(hooked: Wire) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", hooked.port)
    writer.write(b"POST /wait HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\npartial")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    for _ in range(50):
        if seen:
            break
        await asyncio.sleep(0.02)
    assert seen == [{"raised": "ClientGone"}]


async def test_expect_continue_on_a_hooked_route_is_sent_when_the_body_is_asked_for(
    hooked: Wire,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", hooked.port)
    writer.write(
        b"POST /self-service/login HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(b"abc")
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert out.startswith(b"HTTP/1.1 200 ")
    assert seen == [{"body": b"abc", "ip": "127.0.0.1", "route": "/self-service/login"}]
