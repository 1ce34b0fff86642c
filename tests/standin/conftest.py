"""Fixtures for the stand-in's own tests: fresh state, clients without a cookie jar."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient

from tests.kratos_standin import StandinState, create_admin_app, create_public_app

ALICE = ("alice@example.com", "correct horse battery staple")
BOB = ("bob@example.com", "hunter2hunter2")

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def state() -> StandinState:
    st = StandinState(hash_delay=0.0)
    st.add_identity(*ALICE)
    st.add_identity(*BOB, totp=True)
    return st


@pytest.fixture
async def public(state: StandinState, aiohttp_client: ClientFactory) -> Client:
    app: web.Application = create_public_app(state)
    # Cookies are handled by hand so every test states exactly what it sends.
    return await aiohttp_client(app, cookie_jar=DummyCookieJar())


@pytest.fixture
async def admin(state: StandinState, aiohttp_client: ClientFactory) -> Client:
    return await aiohttp_client(create_admin_app(state), cookie_jar=DummyCookieJar())
