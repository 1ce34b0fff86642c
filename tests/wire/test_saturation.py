"""The internal listener (kubelet probes, metrics) stays answerable while the public one is
saturated: the service as a process with a low open-files limit, flooded with idle public
connections, as issue 13's 19,990-connection run was (here 1,200 against a limit of 600)."""

from __future__ import annotations

import asyncio
import resource
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.support.process import ROOT, ServiceProcess
from tests.support.rawhttp import raw_request
from tests.wire.conftest import url_of

FILES = 600


class LimitedProcess(ServiceProcess):
    """The service with ``RLIMIT_NOFILE`` soft and hard at ``FILES``."""

    async def start(self, timeout: float = 20) -> ServiceProcess:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (FILES, FILES))

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "serve",
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=limit,
        )
        async with aiohttp.ClientSession() as http:
            for _ in range(int(timeout * 10)):
                try:
                    async with http.get(self.internal_url + "/health/alive") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        raise RuntimeError("service did not come up")


@pytest.fixture
async def limited(echo: TestServer) -> AsyncIterator[ServiceProcess]:
    service = LimitedProcess(
        {"KRATOS_PUBLIC_URL": url_of(echo), "CLIENT_HEADER_TIMEOUT": "3", "LOG_LEVEL": "ERROR"}
    )
    await service.start()
    yield service
    await service.stop()


@pytest.mark.slow
async def test_internal_listener_answers_while_idle_connections_flood_the_public_one(
    limited: ServiceProcess,
) -> None:
    writers: list[asyncio.StreamWriter] = []
    for _ in range(1200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", limited.public_port)
        except OSError:
            break
        writers.append(writer)
    await asyncio.sleep(0.8)  # the refused ones' short linger is over: the next is answered
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/health/alive", "/metrics"):
                async with http.get(limited.internal_url + path) as response:
                    assert response.status == 200
        refused = await raw_request(
            limited.public_port, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close", timeout=5
        )
        assert refused.status == 503  # over the bound: answered, not hung
    finally:
        for writer in writers:
            writer.close()
    await asyncio.sleep(0.5)
    answered = await raw_request(
        limited.public_port, "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close"
    )
    assert answered.status == 200
