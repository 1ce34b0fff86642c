"""Fixtures of the wire data path's tests: the public listener alone, in front of an upstream
that reports exactly what reached it (``tests/support/echo.py``)."""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestServer

from proxy.edge.wire.limits import client_limits
from proxy.edge.wire.listener import Hooks, PublicListener
from tests.conftest import test_settings
from tests.support.echo import create_echo_app


@pytest.fixture
async def echo() -> AsyncIterator[TestServer]:
    server = TestServer(create_echo_app(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@dataclass
class Wire:
    listener: PublicListener
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


WireFactory = Callable[..., Awaitable[Wire]]


@pytest.fixture
async def start_wire() -> AsyncIterator[WireFactory]:
    """``await start_wire(upstream_url, hooks=None, **settings)``: a listener, stopped after."""
    started: list[PublicListener] = []

    async def start(upstream: str, hooks: Hooks | None = None, **env: str) -> Wire:
        settings = test_settings(KRATOS_PUBLIC_URL=upstream, **env)
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        listener = PublicListener(settings, hooks, client_limits(settings, files))
        port = await listener.start("127.0.0.1", 0)
        started.append(listener)
        return Wire(listener, port)

    yield start
    for listener in reversed(started):
        await listener.stop(1)


@pytest.fixture
async def wire(echo: TestServer, start_wire: WireFactory) -> Wire:
    return await start_wire(url_of(echo), UPSTREAM_READ_TIMEOUT="2")
