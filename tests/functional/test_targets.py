"""Request targets the proxy refuses, and clients that hang up: nothing reaches Kratos, the
caller gets Kratos' error shape, and the metrics show no server error."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson
import pytest

from tests.conftest import Kratos, Service
from tests.kratos_standin.schema import validate
from tests.support.metrics import metric_total
from tests.support.rawhttp import raw_request


@pytest.mark.parametrize(
    "line",
    [
        "GET http://evil.example/sessions/whoami HTTP/1.1",  # absolute form
        "POST http://evil.example/self-service/login?flow=x HTTP/1.1",
        "CONNECT evil.example:443 HTTP/1.1",  # authority form
        "OPTIONS * HTTP/1.1",  # asterisk form
        "GET /self-service/login/%zz HTTP/1.1",  # an escape Go refuses to decode
        "POST /self-service/%2/login?flow=x HTTP/1.1",
    ],
)
async def test_a_target_kratos_would_route_differently_is_refused_unforwarded(
    service: Service, kratos: Kratos, http: aiohttp.ClientSession, line: str
) -> None:
    kratos.state.reset_calls()
    total = "kratos_hooks_http_requests_total"
    before = {
        status: await metric_total(http, service.internal_url, total, status=status)
        for status in ("400", "500")
    }
    response = await raw_request(
        service.running.public_port,
        f"{line}\r\nHost: auth.example.com\r\nContent-Length: 0\r\nConnection: close",
    )
    assert response.status == 400
    document = orjson.loads(response.body)
    validate("errorGeneric", document)
    assert document["error"]["id"] == "bad_request"
    assert kratos.state.requests == []
    after = {
        status: await metric_total(http, service.internal_url, total, status=status)
        for status in before
    }
    assert after == {"400": before["400"] + 1, "500": before["500"]}


async def test_a_client_that_hangs_up_mid_body_is_an_info_line_not_a_server_error(
    service: Service, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    total = "kratos_hooks_http_requests_total"
    statuses = ("499", "500", "502", "503", "504")
    before = {s: await metric_total(http, service.internal_url, total, status=s) for s in statuses}
    _, writer = await asyncio.open_connection("127.0.0.1", service.running.public_port)
    writer.write(
        b"POST /self-service/login?flow=x HTTP/1.1\r\nHost: h\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"method":"password",'
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    for _ in range(50):
        after = {
            s: await metric_total(http, service.internal_url, total, status=s) for s in statuses
        }
        if after != before:
            break
        await asyncio.sleep(0.05)
    assert after == {**before, "499": before["499"] + 1}
    gone = [r for r in caplog.records if "client went away" in r.getMessage()]
    assert gone and all(r.levelno == logging.INFO for r in gone)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
