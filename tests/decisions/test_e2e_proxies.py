"""End to end with real proxies: nginx ``auth_request`` and Caddy ``forward_auth`` running the
configurations shipped in ``deploy/`` in front of an app that echoes what it received."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from yarl import URL

from tests.decisions.conftest import API, BROWSER
from tests.decisions.proxies import Proxied

pytestmark = pytest.mark.e2e


async def test_allowed_request_reaches_the_app_with_our_identity_only(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    identity, _, cookie = proxied.decisions.user(roles=["editor"])
    headers = {"Cookie": f"ory_kratos_session={cookie}", "X-User-ID": "admin", **BROWSER}
    async with http.get(proxied.base + "/app/page?x=1", headers=headers) as response:
        assert response.status == 200
        seen = (await response.json())["headers"]
    assert seen["x-user-id"] == [identity["id"]]
    assert seen["x-user-email"] == [identity["traits"]["email"]]
    assert seen["x-user-roles"] == ["editor"]
    assert seen["x-session-id"][0]


async def test_api_token_reaches_the_app(proxied: Proxied, http: aiohttp.ClientSession) -> None:
    identity, token, _ = proxied.decisions.user()
    headers = {"Authorization": f"Bearer {token}", **API}
    async with http.post(proxied.base + "/app/items", headers=headers, data=b"{}") as response:
        assert response.status == 200
        assert (await response.json())["headers"]["x-user-id"] == [identity["id"]]


async def test_browser_without_session_is_redirected_to_login(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        proxied.base + "/app/page?x=1", headers=BROWSER, allow_redirects=False
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(proxied.base + "/self-service/login/browser?")
    assert parse_qs(urlsplit(location).query)["return_to"] == [proxied.base + "/app/page?x=1"]


async def test_api_without_credentials_gets_401(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    spoofed = {**API, "X-User-ID": "admin"}
    async with http.get(proxied.base + "/app/page", headers=spoofed) as response:
        assert response.status == 401
        body = await response.read()
    assert b"admin" not in body  # nothing of the app leaked


async def test_step_up_redirect_for_an_aal1_session(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    _, _, cookie = proxied.decisions.user(aal="aal1")
    headers = {"Cookie": f"ory_kratos_session={cookie}", **BROWSER}
    async with http.get(
        proxied.base + "/secure/report", headers=headers, allow_redirects=False
    ) as response:
        assert response.status == 302
        query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["aal"] == ["aal2"]
    assert query["return_to"] == [proxied.base + "/secure/report"]
    _, _, strong = proxied.decisions.user(aal="aal2")
    headers["Cookie"] = f"ory_kratos_session={strong}"
    async with http.get(proxied.base + "/secure/report", headers=headers) as allowed:
        assert allowed.status == 200


async def test_client_cannot_describe_the_original_request_itself(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    """Context headers a client sends must never reach the decision as the proxy's own."""
    spoofed = {
        **API,
        "X-Forwarded-Uri": "/public/x",
        "X-Forwarded-Method": "GET",
        "X-Original-URI": "/public/x",
        "X-Original-Method": "GET",
        "X-Registry-Action": "get-manifest",
    }
    async with http.get(proxied.base + "/app/page", headers=spoofed) as response:
        assert response.status == 401


async def test_dot_segments_do_not_escape_a_rule(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    for sneaky in ("/public/../app/page", "/public/%2e%2e/app/page"):
        url = URL(proxied.base + sneaky, encoded=True)  # sent as written, not normalised
        async with http.get(url, headers=API) as response:
            assert response.status == 401, sneaky
