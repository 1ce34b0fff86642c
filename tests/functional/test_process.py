"""The service as a real process: memory while streaming a gigabyte, graceful SIGTERM, workers."""

from __future__ import annotations

import asyncio
import hashlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from tests.support.echo import PATTERN, create_echo_app
from tests.support.process import ServiceProcess, rss_bytes

GIB = 1024**3
MIB = 1024**2


@pytest.fixture
async def echo() -> AsyncIterator[TestServer]:
    server = TestServer(create_echo_app(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def process(echo: TestServer) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess({"KRATOS_PUBLIC_URL": str(echo.make_url("")).rstrip("/")})
    await service.start()
    yield service
    await service.stop()


async def gigabyte() -> AsyncIterator[bytes]:
    for _ in range(GIB // len(PATTERN)):
        yield PATTERN


@pytest.mark.slow
async def test_gigabyte_up_and_down_keeps_rss_growth_under_64_mib(
    process: ServiceProcess,
) -> None:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(auto_decompress=False, timeout=timeout) as http:
        async with http.get(process.public_url + "/bytes?n=1024") as response:
            await response.read()  # warm: pools, buffers, first-request allocations
        baseline = rss_bytes(process.pid)

        expected = hashlib.sha256()
        for _ in range(GIB // len(PATTERN)):
            expected.update(PATTERN)
        async with http.post(
            process.public_url + "/upload",
            data=gigabyte(),
            headers={"Content-Length": str(GIB), "Content-Type": "application/octet-stream"},
        ) as response:
            report = await response.json()
        assert report["body_size"] == GIB
        assert report["body_sha256"] == expected.hexdigest()

        received = 0
        async with http.get(process.public_url + f"/bytes?n={GIB}") as response:
            assert response.headers["Content-Length"] == str(GIB)
            async for chunk in response.content.iter_any():
                received += len(chunk)
        assert received == GIB

    growth = rss_bytes(process.pid, "VmHWM") - baseline
    print(f"\nRSS baseline {baseline / MIB:.1f} MiB, peak growth {growth / MIB:.1f} MiB")
    assert growth < 64 * MIB


async def test_sigterm_lets_in_flight_requests_finish_then_exits_zero(
    process: ServiceProcess,
) -> None:
    async with aiohttp.ClientSession() as http:
        in_flight = asyncio.ensure_future(http.get(process.public_url + "/slow?delay=1"))
        await asyncio.sleep(0.3)
        process.signal(signal.SIGTERM)
        response = await in_flight
        assert response.status == 200
        assert await response.text() == "finally"
        response.release()
        assert await process.wait() == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(process.public_url + "/x"):
                pass


async def test_workers_share_the_ports_and_stop_together(echo: TestServer) -> None:
    service = ServiceProcess(
        {"KRATOS_PUBLIC_URL": str(echo.make_url("")).rstrip("/")}, args=("--workers", "2")
    )
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(20):
                async with http.get(
                    service.public_url + "/x", headers={"Connection": "close"}
                ) as r:
                    assert r.status == 200
        children = await asyncio.create_subprocess_exec(
            "pgrep", "-P", str(service.pid), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await children.communicate()
        assert len(out.split()) == 2
        service.signal(signal.SIGTERM)
        assert await service.wait() == 0
    finally:
        await service.stop()


RULES_BEFORE = """
[[rules]]
id = "closed"
paths = ["/closed/**"]
authenticators = ["anonymous"]
authorizer = "deny"
"""
RULES_AFTER = (
    RULES_BEFORE
    + """
[[rules]]
id = "open"
paths = ["/open/**"]
authenticators = ["anonymous"]
authorizer = "allow"
"""
)


@pytest.mark.slow
async def test_sighup_reaches_every_worker_and_spares_the_parent(
    echo: TestServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES_BEFORE)
    service = ServiceProcess(
        {
            "KRATOS_PUBLIC_URL": str(echo.make_url("")).rstrip("/"),
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "DECISIONS_RULES_FILE": str(rules),
            "DECISIONS_RELOAD_INTERVAL": "0",  # SIGHUP only: no polling to hide a lost signal
        },
        args=("--workers", "2"),
    )
    await service.start()
    ask = {"X-Forwarded-Uri": "/open/page", "X-Forwarded-Host": "app.example.com"}

    async def statuses(http: aiohttp.ClientSession) -> set[int]:
        seen = set()
        for _ in range(20):  # a fresh connection each: the kernel spreads them over workers
            async with http.get(
                service.internal_url + "/decisions", headers={**ask, "Connection": "close"}
            ) as r:
                seen.add(r.status)
        return seen

    try:
        async with aiohttp.ClientSession() as http:
            assert await statuses(http) == {404}
            rules.write_text(RULES_AFTER)
            service.signal(signal.SIGHUP)
            deadline = asyncio.get_running_loop().time() + 10
            while (seen := await statuses(http)) != {200}:
                assert asyncio.get_running_loop().time() < deadline, seen
                await asyncio.sleep(0.2)
        assert service.proc is not None and service.proc.returncode is None
        service.signal(signal.SIGTERM)
        assert await service.wait() == 0
    finally:
        await service.stop()


async def test_both_listeners_write_their_access_lines_in_the_formatters_shape(
    echo: TestServer,
) -> None:
    service = ServiceProcess(
        {"KRATOS_PUBLIC_URL": str(echo.make_url("")).rstrip("/"), "LOG_LEVEL": "INFO"}
    )
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(service.public_url + "/sessions/whoami?token=s3cret") as r:
                assert r.status == 200
            async with http.get(service.internal_url + "/health/alive") as r:
                assert r.status == 200
        service.signal(signal.SIGTERM)
        assert await service.wait() == 0
    finally:
        await service.stop()
    assert service.proc is not None and service.proc.stderr is not None
    lines = [orjson.loads(line) for line in (await service.proc.stderr.read()).splitlines()]
    access = {line["path"]: line for line in lines if line.get("msg") == "access"}
    keys = ["ts", "level", "logger", "msg", "request_id", "method", "path", "query", "status"]
    public, internal = access["/sessions/whoami"], access["/health/alive"]
    assert list(public)[: len(keys)] == keys and list(internal)[: len(keys)] == keys
    assert "s3cret" not in public["query"] and public["upstream_status"] == 200
    assert internal["route"] == "health" and internal["status"] == 200
    assert (
        list(public)[-4:]
        == list(internal)[-4:]
        == ["route", "client_ip", "bytes_sent", "latency_ms"]
    )
