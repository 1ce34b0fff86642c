"""The transparent streaming proxy, through the real public listener, against a byte-echo
upstream that reports exactly what reached it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Service, ServiceFactory
from tests.kratos_standin.schema import validate
from tests.support.echo import ECHO_STATE, GZIP_BODY, create_echo_app, pattern_bytes
from tests.support.rawhttp import dechunk, raw_request


@pytest.fixture
async def echo() -> AsyncIterator[TestServer]:
    server = TestServer(create_echo_app(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def echo_url(echo: TestServer) -> str:
    return str(echo.make_url("")).rstrip("/")


@pytest.fixture
async def proxy(echo: TestServer, start_service: ServiceFactory) -> Service:
    return await start_service(KRATOS_PUBLIC_URL=echo_url(echo), UPSTREAM_READ_TIMEOUT="2")


def seen_headers(report: dict[str, object]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in report["headers"]]  # type: ignore[attr-defined]


def names(report: dict[str, object]) -> list[str]:
    return [k.lower() for k, _ in seen_headers(report)]


async def test_path_and_query_reach_upstream_byte_exact(proxy: Service) -> None:
    target = "/a/%2F/../b//c/%2e%2e/?z=1&a=2&a=1&sp=%20+x"
    response = await raw_request(
        proxy.running.public_port, f"GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert response.status == 200
    assert orjson.loads(response.body)["raw_path"] == target


async def test_only_forwarding_headers_are_added(proxy: Service) -> None:
    response = await raw_request(
        proxy.running.public_port,
        "GET /x HTTP/1.1\r\nHost: auth.example.com\r\nCookie: a=1; b=2\r\n"
        "X-Custom: yes\r\nConnection: close",
    )
    report = orjson.loads(response.body)
    added = set(names(report)) - {"host", "cookie", "x-custom"}
    assert added == {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "true-client-ip",
        "x-request-id",
    }
    headers = dict(seen_headers(report))
    assert headers["Host"] == "auth.example.com"
    assert headers["Cookie"] == "a=1; b=2"
    assert "origin" not in names(report)


async def test_spoofed_forwarded_for_from_untrusted_peer_is_ignored(proxy: Service) -> None:
    response = await raw_request(
        proxy.running.public_port,
        "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\n"
        "X-Forwarded-Proto: https\r\nConnection: close",
    )
    headers = seen_headers(orjson.loads(response.body))
    assert ("X-Forwarded-For", "127.0.0.1") in headers
    assert ("True-Client-IP", "127.0.0.1") in headers
    assert ("X-Forwarded-Proto", "http") in headers
    assert all("6.6.6.6" not in v for _, v in headers)


async def test_trusted_proxy_chain_gives_rightmost_untrusted_client(
    echo: TestServer, start_service: ServiceFactory
) -> None:
    svc = await start_service(KRATOS_PUBLIC_URL=echo_url(echo), TRUSTED_PROXIES="127.0.0.0/8")
    response = await raw_request(
        svc.running.public_port,
        "GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n"
        "X-Forwarded-Proto: https\r\nConnection: close",
    )
    headers = seen_headers(orjson.loads(response.body))
    assert ("True-Client-IP", "203.0.113.9") in headers
    assert ("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 127.0.0.1") in headers
    assert ("X-Forwarded-Proto", "https") in headers


async def test_hop_by_hop_headers_removed_both_ways(proxy: Service) -> None:
    response = await raw_request(
        proxy.running.public_port,
        "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Private\r\nX-Private: 1\r\n"
        "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9v",
    )
    seen = names(orjson.loads(response.body))
    assert not {"x-private", "keep-alive", "te", "proxy-authorization"} & set(seen)
    hop = await raw_request(
        proxy.running.public_port, "GET /hop HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert hop.header("X-Hop-Only") is None
    assert hop.header("X-End-To-End") == "kept"


async def test_every_set_cookie_kept_in_order(proxy: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(proxy.public_url + "/cookies") as response:
        assert response.headers.getall("Set-Cookie") == [
            "first=1; Path=/",
            "second=2; Path=/; HttpOnly",
            "third=3; Path=/; Secure",
        ]


async def test_redirects_reach_the_client(proxy: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(proxy.public_url + "/redirect", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "http://ui.example/login?flow=abc"


async def test_gzip_passes_byte_identical_both_ways(
    proxy: Service, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        proxy.public_url + "/gzip", headers={"Accept-Encoding": "gzip"}
    ) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert await response.read() == GZIP_BODY
    async with http.post(
        proxy.public_url + "/upload",
        data=GZIP_BODY,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    ) as response:
        report = await response.json()
    assert report["body_sha256"] == hashlib.sha256(GZIP_BODY).hexdigest()
    assert ("Content-Encoding", "gzip") in seen_headers(report)


async def test_content_length_and_chunked_are_preserved(proxy: Service) -> None:
    port = proxy.running.public_port
    sized = await raw_request(
        port,
        "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close",
        b"hello",
    )
    report = orjson.loads(sized.body)
    assert ("Content-Length", "5") in seen_headers(report)
    assert "transfer-encoding" not in names(report)
    chunked = await raw_request(
        port,
        "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close",
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    report = orjson.loads(
        dechunk(chunked.body) if chunked.header("Transfer-Encoding") else chunked.body
    )
    assert ("Transfer-Encoding", "chunked") in seen_headers(report)
    assert report["body_size"] == 11
    down = await raw_request(port, "GET /bytes?n=1000 HTTP/1.1\r\nHost: h\r\nConnection: close")
    assert down.header("Content-Length") == "1000"
    assert down.body == pattern_bytes(1000)
    down_chunked = await raw_request(
        port, "GET /bytes?n=1000&chunked=1 HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert down_chunked.header("Transfer-Encoding") == "chunked"
    assert down_chunked.header("Content-Length") is None
    assert dechunk(down_chunked.body) == pattern_bytes(1000)


async def test_head_keeps_length_and_sends_no_body(proxy: Service) -> None:
    response = await raw_request(
        proxy.running.public_port, "HEAD /bytes?n=4096 HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert response.status == 200
    assert response.header("Content-Length") == "4096"
    assert response.body == b""


async def test_request_id_generated_passed_and_echoed(
    proxy: Service, http: aiohttp.ClientSession
) -> None:
    async with http.get(proxy.public_url + "/x") as response:
        generated = response.headers["X-Request-ID"]
        report = await response.json()
    assert ("X-Request-ID", generated) in seen_headers(report)
    async with http.get(proxy.public_url + "/x", headers={"X-Request-ID": "abc-123"}) as response:
        assert response.headers["X-Request-ID"] == "abc-123"
        assert ("X-Request-ID", "abc-123") in seen_headers(await response.json())


async def test_path_prefix_is_stripped(echo: TestServer, start_service: ServiceFactory) -> None:
    svc = await start_service(
        KRATOS_PUBLIC_URL=echo_url(echo), PUBLIC_PATH_PREFIX="/ory/kratos/public"
    )
    port = svc.running.public_port
    inside = await raw_request(
        port, "GET /ory/kratos/public/sessions/whoami?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert orjson.loads(inside.body)["raw_path"] == "/sessions/whoami?x=1"
    outside = await raw_request(
        port, "GET /sessions/whoami HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert outside.status == 404
    validate("errorGeneric", orjson.loads(outside.body))


async def test_upstream_down_is_502_in_kratos_error_shape(
    start_service: ServiceFactory, http: aiohttp.ClientSession
) -> None:
    svc = await start_service(KRATOS_PUBLIC_URL="http://127.0.0.1:9")
    async with http.get(svc.public_url + "/self-service/login/browser") as response:
        assert response.status == 502
        body = await response.json()
    validate("errorGeneric", body)
    assert body["error"]["code"] == 502
    assert "127.0.0.1" not in orjson.dumps(body).decode()
    async with http.get(svc.internal_url + "/metrics") as response:
        assert 'kratos_hooks_upstream_errors_total{kind="connect"}' in await response.text()
    async with http.get(svc.internal_url + "/health/ready") as response:
        assert response.status == 200  # Kratos down is the same for every replica
        ready = await response.json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["kratos_public"]["status"] == "down"


async def test_upstream_timeout_is_504(
    echo: TestServer, start_service: ServiceFactory, http: aiohttp.ClientSession
) -> None:
    svc = await start_service(KRATOS_PUBLIC_URL=echo_url(echo), UPSTREAM_READ_TIMEOUT="0.3")
    async with http.get(svc.public_url + "/slow?delay=2") as response:
        assert response.status == 504
        body = await response.json()
    validate("errorGeneric", body)
    assert body["error"]["id"] == "upstream_timeout"


async def test_upstream_failure_mid_body_is_never_a_complete_response(
    proxy: Service, http: aiohttp.ClientSession
) -> None:
    async with http.get(proxy.public_url + "/truncate") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_client_disconnect_releases_the_upstream_stream(
    proxy: Service, echo: TestServer
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.running.public_port)
    writer.write(b"GET /bytes?n=1073741824 HTTP/1.1\r\nHost: h\r\n\r\n")
    await writer.drain()
    await reader.readexactly(256 * 1024)
    writer.transport.abort()
    state = echo.app[ECHO_STATE]
    await asyncio.wait_for(state.disconnected.wait(), 10)
    assert state.disconnects == 1


async def test_kratos_login_flow_through_the_proxy(
    service: Service, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        service.public_url + "/self-service/login/browser", allow_redirects=False
    ) as response:
        assert response.status == 303
        assert "flow=" in response.headers["Location"]
        assert any(c.startswith("csrf_token_") for c in response.headers.getall("Set-Cookie"))


async def test_access_log_carries_no_secret(
    proxy: Service, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    from proxy.kernel.logs import JsonFormatter

    caplog.set_level(logging.DEBUG)
    secret_values = ("sessioncookievalue", "ory_st_tokenvalue", "hunter2pass", "logouttokenvalue")
    async with http.post(
        proxy.public_url + "/self-service/logout?token=logouttokenvalue",
        headers={
            "Cookie": "ory_kratos_session=sessioncookievalue",
            "Authorization": "Bearer ory_st_tokenvalue",
            "X-Session-Token": "ory_st_tokenvalue",
        },
        data=b"identifier=a&password=hunter2pass",
    ) as response:
        assert response.status == 200
    formatter = JsonFormatter()
    ours = [r for r in caplog.records if r.name.startswith("kratos_hooks")]
    lines = [formatter.format(record) for record in ours]
    assert any('"msg":"access"' in line for line in lines)
    assert not [line for line in lines for s in secret_values if s in line]


MALFORMED = [  # each quotes a secret in the bytes aiohttp's parser complains about
    "GET / HTTP/1.1\r\nHost: h\r\nCookie: ory_kratos_session=cookie-s3cr3t\x01",
    "GET /?token=query-s3cr3t\x01 HTTP/1.1\r\nHost: h",
    "GET / HTTP/1.1\r\nHost: h\r\nX-Session Token: header-s3cr3t",
    "GET / HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer ory_st_bearer-s3cr3t\x7f",
]


async def test_malformed_requests_are_logged_without_their_bytes(
    proxy: Service, caplog: pytest.LogCaptureFixture
) -> None:
    from proxy.kernel.logs import JsonFormatter

    caplog.set_level(logging.DEBUG)
    for port in (proxy.running.public_port, proxy.running.internal_port):
        for head in MALFORMED:
            answer = await raw_request(port, head + "\r\nConnection: close")
            assert answer.status == 400
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert not [line for line in lines if "s3cr3t" in line]
    refused = [r for r in caplog.records if r.getMessage() == "malformed request refused"]
    assert len(refused) == 2 * len(MALFORMED)
    assert all(r.levelname == "INFO" and r.__dict__["status"] == 400 for r in refused)


async def test_metrics_and_readiness(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(service.public_url + "/sessions/whoami") as response:
        assert response.status == 401
    async with http.get(service.internal_url + "/metrics") as response:
        text = await response.text()
    assert (
        'kratos_hooks_http_requests_total{listener="public",route="sessions",status="401"}' in text
    )
    async with http.get(service.internal_url + "/health/ready") as response:
        assert response.status == 200
        body = await response.json()
    assert body["checks"]["kratos_public"]["status"] == "ok"
