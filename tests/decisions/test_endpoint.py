"""The decisions endpoint through the real internal listener, against the Kratos stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from handlers.decisions.rules_loader import RulesError
from proxy.kernel.sessions.cache import REFRESH_EVERY
from tests.conftest import Kratos, ServiceFactory
from tests.decisions.conftest import API, BROWSER, Decisions, DecisionsFactory, forwarded

COOKIE = "ory_kratos_session"


async def ask(
    http: aiohttp.ClientSession, d: Decisions, uri: str, *, path: str = "", **headers: str
) -> aiohttp.ClientResponse:
    request_headers = {**forwarded(uri), **headers}
    async with http.get(d.url + path, headers=request_headers, allow_redirects=False) as response:
        await response.read()
        return response


async def test_allowed_session_gets_identity_headers(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    identity, _, cookie = decisions.user(roles=["editor"])
    response = await ask(
        http, decisions, "/app/page?x=1", Cookie=f"{COOKIE}={cookie}", **{"X-User-ID": "admin"}
    )
    assert response.status == 200
    assert response.headers["X-User-ID"] == identity["id"]  # never the caller's own value
    assert response.headers["X-User-Email"] == identity["traits"]["email"]
    assert response.headers["X-User-Roles"] == "editor"
    assert response.headers["X-User-Verified"] == "true"
    assert response.headers["X-Session-ID"]
    assert response.headers["X-Auth-Time"].startswith("20")
    assert response.headers["X-Tenant"] == "acme"


async def test_session_token_header_and_bearer(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    identity, token, _ = decisions.user()
    by_header = await ask(http, decisions, "/app", **API, **{"X-Session-Token": token})
    by_bearer = await ask(http, decisions, "/app", **API, Authorization=f"Bearer {token}")
    assert by_header.status == by_bearer.status == 200
    assert by_bearer.headers["X-User-ID"] == identity["id"]


async def test_browser_without_session_is_sent_to_login(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    response = await ask(http, decisions, "/app/page?x=1", **BROWSER)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith("https://auth.example.com/self-service/login/browser?")
    assert parse_qs(urlsplit(location).query)["return_to"] == [
        "https://app.example.com/app/page?x=1"
    ]
    headers = {**forwarded("/app/form", method="POST"), **BROWSER}
    async with http.get(decisions.url, headers=headers, allow_redirects=False) as post:
        assert post.status == 303


async def test_api_without_session_gets_401_json(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    async with http.get(decisions.url, headers={**forwarded("/app"), **API}) as response:
        body = await response.json()
    assert response.status == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert body["error"]["code"] == 401


async def test_invalid_credential_stops_the_chain(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    anonymous = await ask(http, decisions, "/mixed/x", **API)
    assert anonymous.status == 200 and "X-User-ID" not in anonymous.headers
    forged = await ask(http, decisions, "/mixed/x", **API, Cookie=f"{COOKIE}=forged")
    assert forged.status == 401  # not silently downgraded to anonymous


async def test_roles_authorizer(decisions: Decisions, http: aiohttp.ClientSession) -> None:
    _, plain, _ = decisions.user(roles=["editor"])
    _, admin, _ = decisions.user(roles=["admin"])
    assert (
        await ask(http, decisions, "/admin/x", **API, **{"X-Session-Token": plain})
    ).status == 403
    allowed = await ask(http, decisions, "/admin/x", **API, **{"X-Session-Token": admin})
    assert allowed.status == 200 and allowed.headers["X-User-Roles"] == "admin"


async def test_step_up_for_aal1_sessions(decisions: Decisions, http: aiohttp.ClientSession) -> None:
    _, token, cookie = decisions.user(aal="aal1")
    browser = await ask(http, decisions, "/secure/x", **BROWSER, Cookie=f"{COOKIE}={cookie}")
    assert browser.status == 302
    query = parse_qs(urlsplit(browser.headers["Location"]).query)
    assert query["aal"] == ["aal2"] and query["return_to"] == ["https://app.example.com/secure/x"]
    async with http.get(
        decisions.url, headers={**forwarded("/secure/x"), **API, "X-Session-Token": token}
    ) as api:
        body = await api.json()
    assert api.status == 403 and body["error"] == "aal2_required"
    _, strong, _ = decisions.user(aal="aal2")
    assert (await ask(http, decisions, "/secure/x", **{"X-Session-Token": strong})).status == 200


async def test_completed_step_up_is_seen_despite_the_cache(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, token, _ = decisions.user(aal="aal1")
    assert (await ask(http, decisions, "/app", **{"X-Session-Token": token})).status == 200
    session = decisions.kratos.state.session_by_token(token)
    assert session is not None
    session.aal = "aal2"  # the user completed the second factor on the same session
    await asyncio.sleep(REFRESH_EVERY)  # the redirect to login and back takes at least that
    assert (await ask(http, decisions, "/secure/x", **{"X-Session-Token": token})).status == 200


async def test_step_up_rechecks_are_bounded(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, token, _ = decisions.user(aal="aal1")
    for _ in range(10):
        assert (await ask(http, decisions, "/secure/x", **{"X-Session-Token": token})).status == 403
    assert decisions.whoami_calls() == 1  # not one Kratos call per step-up denial


async def test_kratos_requiring_aal2_is_a_step_up_not_a_401(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    decisions.kratos.state.require_aal2 = True
    _, token, cookie = decisions.user(aal="aal1")
    async with http.get(
        decisions.url, headers={**forwarded("/app"), **API, "X-Session-Token": token}
    ) as api:
        body = await api.json()
    assert api.status == 403 and body["error"] == "aal2_required"
    browser = await ask(http, decisions, "/app", **BROWSER, Cookie=f"{COOKIE}={cookie}")
    assert browser.status == 302 and "aal=aal2" in browser.headers["Location"]


async def test_deny_rule_and_no_matching_rule(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    assert (await ask(http, decisions, "/blocked/x", **API)).status == 403
    assert (await ask(http, decisions, "/unknown", **API)).status == 404
    assert (await ask(http, decisions, "/health")).status == 200


async def test_configured_no_match_status(
    start_decisions: DecisionsFactory, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions(DECISIONS_NO_MATCH_STATUS="403")
    assert (await ask(http, d, "/unknown", **API)).status == 403


async def test_without_a_rules_file_everything_is_denied(
    start_decisions: DecisionsFactory, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions(DECISIONS_RULES_FILE="")
    _, token, _ = d.user()
    assert (await ask(http, d, "/health")).status == 404
    assert (await ask(http, d, "/app", **{"X-Session-Token": token})).status == 404


async def test_forwarded_headers_from_untrusted_peers_are_ignored(
    start_decisions: DecisionsFactory, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions(TRUSTED_PROXIES="10.0.0.0/8")
    _, _, cookie = d.user()
    # The peer (loopback) is not trusted: its claim to be asking about /app is not believed.
    assert (await ask(http, d, "/app", Cookie=f"{COOKIE}={cookie}")).status == 404
    # Oathkeeper style: the path after /decisions is the request, the Host header its host.
    async with http.get(
        d.url + "/app/items",
        headers={"Host": "app.example.com", "Cookie": f"{COOKIE}={cookie}"},
    ) as response:
        assert response.status == 200


async def test_nginx_convention_and_style(
    start_decisions: DecisionsFactory, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions(DECISIONS_ERROR_STYLE="nginx")
    nginx = {"X-Original-URI": "/app/page?x=1", "X-Original-Method": "GET"}
    nginx["Host"] = "app.example.com"
    async with http.get(d.url, headers={**nginx, **BROWSER}, allow_redirects=False) as browser:
        assert await browser.read() == b""
    assert browser.status == 401
    assert browser.headers["X-Login"].endswith(
        "return_to=http%3A%2F%2Fapp.example.com%2Fapp%2Fpage%3Fx%3D1"
    )
    async with http.get(d.url, headers={**nginx, **API}) as api:
        assert api.status == 401 and "X-Login" not in api.headers
    async with http.get(d.url, headers={**nginx, "X-Original-URI": "/nothing"}) as unmatched:
        assert unmatched.status == 403  # nginx would turn a 404 into a 500


async def test_registry_context(decisions: Decisions, http: aiohttp.ClientSession) -> None:
    _, token, _ = decisions.user()
    registry = {
        "X-Registry-Action": "put-manifest",
        "X-Registry-Namespace": "team-a/app",
        "Authorization": f"Bearer {token}",
    }
    assert (await ask(http, decisions, "/v2/team-a/app/manifests/v1", **registry)).status == 200
    registry["X-Registry-Namespace"] = "team-b/app"
    assert (await ask(http, decisions, "/v2/team-b/app/manifests/v1", **registry)).status == 404


async def test_header_values_are_sanitised(
    decisions: Decisions, http: aiohttp.ClientSession
) -> None:
    _, token, _ = decisions.user(tenant="acme\r\nX-User-ID: root\x00")
    response = await ask(http, decisions, "/app", **{"X-Session-Token": token})
    assert response.headers["X-Tenant"] == "acmeX-User-ID: root"
    assert len(response.headers.getall("X-User-ID")) == 1


async def test_broken_rules_file_stops_start_up(
    start_decisions: DecisionsFactory, rules_file: Path
) -> None:
    rules_file.write_text('[[rules]]\nid = "x"\nauthenticators = ["anonymous"]\n')
    with pytest.raises(RulesError, match=r"rule #1 \('x'\): field 'authorizer'"):
        await start_decisions()


async def test_decisions_are_counted(decisions: Decisions, http: aiohttp.ClientSession) -> None:
    await ask(http, decisions, "/health")
    await ask(http, decisions, "/blocked/x")
    async with http.get(decisions.service.internal_url + "/metrics") as response:
        text = await response.text()
    assert 'kratos_hooks_decisions_total{result="allow",rule="health"}' in text
    assert 'kratos_hooks_decisions_total{result="forbidden",rule="blocked"}' in text


async def test_readiness_reports_the_rules(
    decisions: Decisions, http: aiohttp.ClientSession, kratos: Kratos, start_service: ServiceFactory
) -> None:
    async with http.get(decisions.service.internal_url + "/health/ready") as response:
        body = await response.json()
    assert body["checks"]["decisions_rules"]["status"] == "ok"
    assert body["checks"]["decisions_rules"]["rules"] == 7
