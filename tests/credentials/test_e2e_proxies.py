"""Tokens through the shipped nginx and Caddy configurations: the app sees the token's
headers (seed guide §6.6) and never a client's own copies of them."""

from __future__ import annotations

import time

import aiohttp
import pytest

from tests.decisions.conftest import API, RULES, rules_file, start_decisions
from tests.decisions.proxies import Proxied, echo_app, proxied

__all__ = ["echo_app", "proxied", "rules_file", "start_decisions"]  # fixtures used here

pytestmark = pytest.mark.e2e
TOKEN_RULE = """
[[rules]]
id = "tokens-app"
paths = ["/tokens-app/**"]
authenticators = ["token"]
authorizer = { type = "scopes", scopes = ["read:users"] }
"""
SMUGGLED = {
    "X-User-ID": "admin",
    "X-Token-Scopes": "admin:*",
    "X-Org-ID": "other-org",
    "X-Key-ID": "tok_forged",
    "X-Service-Name": "root",
    "X-Service-Scopes": "admin:*",
    "X-Token-ID": "tok_forged",
    "X-Key-Scopes": "admin:*",
}


@pytest.fixture
def rules_text() -> str:
    return TOKEN_RULE + RULES


async def test_a_token_reaches_the_app_with_its_headers_only(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    credentials = proxied.decisions.service.running.shared.credentials
    assert credentials is not None
    identity, _, _ = proxied.decisions.user()
    made = await credentials.issue(
        "pat",
        owner=identity["id"],
        name="e2e",
        scopes=("read:users",),
        expires_at=time.time() + 3600,
        created_by="test",
        origin="cli",
    )
    headers = {"Authorization": f"Bearer {made.secret}", **API, **SMUGGLED}
    async with http.get(proxied.base + "/tokens-app/x", headers=headers) as response:
        assert response.status == 200
        seen = (await response.json())["headers"]
    assert seen["x-user-id"] == [identity["id"]]
    assert seen["x-token-id"] == [made.record.id]
    assert seen["x-token-scopes"] == ["read:users"]
    for name in ("x-org-id", "x-key-id", "x-key-scopes", "x-service-name", "x-service-scopes"):
        assert name not in seen, name
    async with http.get(
        proxied.base + "/tokens-app/x", headers={**API, "Authorization": "Bearer pat_nope"}
    ) as response:
        assert response.status == 401
