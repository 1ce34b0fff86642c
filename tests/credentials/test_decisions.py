"""Decisions with tokens, through the real internal listener: allow with §6.6 headers, the
§6.4 answers, kinds per rule, scopes and roles, the owner in Kratos."""

from __future__ import annotations

import asyncio

import aiohttp

from handlers.credentials.tokens import issue
from tests.credentials.conftest import Tokens, TokensFactory, bearer, forwarded
from tests.support.metrics import metric_total

QUERIES = "kratos_hooks_tokens_store_queries_total"


async def decide(
    http: aiohttp.ClientSession, t: Tokens, uri: str, headers: dict[str, str], method: str = "GET"
) -> aiohttp.ClientResponse:
    async with http.get(t.url, headers=forwarded(uri, method) | headers) as response:
        await response.read()
        return response


async def test_a_pat_is_allowed_with_its_owner_and_scopes(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    owner = tokens.identity()
    secret, token_id = await tokens.mint(owner=owner, scopes=("read:users", "write:resources"))
    answer = await decide(http, tokens, "/api/users/7", bearer(secret))
    assert answer.status == 200
    assert answer.headers["X-User-ID"] == owner
    assert answer.headers["X-Token-ID"] == token_id
    assert answer.headers["X-Token-Scopes"] == "read:users,write:resources"
    assert "X-User-Email" not in answer.headers and "X-Org-ID" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"


async def test_api_keys_and_service_tokens_say_who_they_speak_for(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    key, key_id = await tokens.mint("key", owner="org-42", scopes=("read:users",))
    answer = await decide(http, tokens, "/api/users/1", {"X-API-Key": key})
    assert answer.status == 200
    assert (answer.headers["X-Org-ID"], answer.headers["X-Key-ID"]) == ("org-42", key_id)
    assert answer.headers["X-Key-Scopes"] == "read:users"
    assert "X-User-ID" not in answer.headers
    svc, _ = await tokens.mint("svc", owner="billing-worker", scopes=("read:users",))
    answer = await decide(http, tokens, "/api/users/1", bearer(svc))
    assert answer.headers["X-Service-Name"] == "billing-worker"
    assert answer.headers["X-Service-Scopes"] == "read:users"
    assert "X-User-ID" not in answer.headers and "X-Key-ID" not in answer.headers
    tagged = await decide(http, tokens, "/tagged/x", bearer(svc))
    assert tagged.headers["X-Token-Kind"] == "svc"


async def test_each_refusal_is_answered_as_rfc_6750_says(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    secret, token_id = await tokens.mint()
    expired, _ = await tokens.mint(expires_in=-1)
    revoked, revoked_id = await tokens.mint()
    await tokens.credentials.revoke(revoked_id, by="test")
    unknown = issue("pat", tokens.credentials.config.prefixes).secret  # well formed, never stored
    forged = secret[:-6] + ("000000" if not secret.endswith("000000") else "000001")
    cases = [
        (unknown, 401, "invalid_token", 'error_description="The token is invalid."'),
        (forged, 401, "invalid_token", 'error_description="The token is malformed."'),
        ("pat_" + "A" * 36, 401, "invalid_token", 'error="invalid_token"'),
        (expired, 401, "token_expired", 'error="invalid_token", error_description="The token has'),
        (revoked, 401, "invalid_token", 'error_description="The token has been revoked."'),
    ]  # fmt: skip
    for token, status, error, header in cases:
        async with http.get(
            tokens.url, headers=forwarded("/api/users/1") | bearer(token)
        ) as response:
            body = await response.json()
            assert response.status == status, token
            assert body["error"] == error
            assert header in response.headers["WWW-Authenticate"]
            assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api.example.com"')
    async with http.get(tokens.url, headers=forwarded("/api/team/x") | bearer(secret)) as response:
        body = await response.json()
        assert response.status == 403
        assert body == {
            "error": "insufficient_scope",
            "error_description": "The token lacks a scope this resource requires.",
            "scope": "admin:team",
            "request_id": response.headers["X-Request-ID"],
        }
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert 'scope="admin:team"' in response.headers["WWW-Authenticate"]
    # A browser with a token is still a program: JSON, no login redirect.
    browser = bearer(expired) | {"Accept": "text/html"}
    assert (await decide(http, tokens, "/api/users/1", browser)).status == 401
    assert token_id


async def test_malformed_tokens_never_reach_the_store(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    secret, _ = await tokens.mint()
    before = await metric_total(http, tokens.service.internal_url, QUERIES)
    for bad in ("pat_short", secret[:-1] + ("A" if secret[-1] != "A" else "B"), "x" * 500, "ory"):
        assert (await decide(http, tokens, "/api/users/1", bearer(bad))).status == 401
    assert await metric_total(http, tokens.service.internal_url, QUERIES) == before
    malformed = await metric_total(
        http, tokens.service.internal_url, "kratos_hooks_tokens_verifications_total",
        result="malformed",
    )  # fmt: skip
    assert malformed >= 4


async def test_a_rule_accepts_only_its_kinds(tokens: Tokens, http: aiohttp.ClientSession) -> None:
    pat, _ = await tokens.mint()
    svc, _ = await tokens.mint("svc")
    refused = await decide(http, tokens, "/internal/jobs", bearer(pat))
    assert refused.status == 401
    assert "not accepted here" in refused.headers["WWW-Authenticate"]
    assert (await decide(http, tokens, "/internal/jobs", bearer(svc))).status == 200


async def test_a_pat_never_goes_beyond_its_owner_and_inherits_the_roles(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    plain = tokens.identity(roles=["editor"])
    admin = tokens.identity(roles=["admin"])
    plain_pat, _ = await tokens.mint(owner=plain, scopes=("admin:team",))
    admin_pat, _ = await tokens.mint(owner=admin, scopes=("admin:*",))
    assert (await decide(http, tokens, "/api/team/1", bearer(plain_pat))).status == 403
    allowed = await decide(http, tokens, "/api/team/1", bearer(admin_pat))
    assert allowed.status == 200 and allowed.headers["X-Token-Scopes"] == "admin:*"
    assert (await decide(http, tokens, "/edit/doc", bearer(plain_pat))).status == 200
    assert (await decide(http, tokens, "/edit/doc", bearer(admin_pat))).status == 403
    key, _ = await tokens.mint("key", scopes=("admin:team",))  # keys have explicit scopes
    assert (await decide(http, tokens, "/api/team/1", bearer(key))).status == 200
    assert (await decide(http, tokens, "/edit/doc", bearer(key))).status == 403


async def test_a_deleted_or_inactive_owner_refuses_the_pat(
    start_tokens: TokensFactory, http: aiohttp.ClientSession
) -> None:
    t = await start_tokens(TOKENS_CACHE_TTL="0.3")
    deleted = t.identity()
    disabled = t.identity()
    gone_pat, _ = await t.mint(owner=deleted)
    off_pat, _ = await t.mint(owner=disabled)
    for pat in (gone_pat, off_pat):
        assert (await decide(http, t, "/api/users/1", bearer(pat))).status == 200
    calls = t.kratos.state.count("GET", f"/admin/identities/{deleted}")
    assert calls == 1
    for _ in range(5):  # cached: Kratos is not asked again within the TTL
        await decide(http, t, "/api/users/1", bearer(gone_pat))
    assert t.kratos.state.count("GET", f"/admin/identities/{deleted}") == 1
    t.kratos.state.delete_identity(deleted)
    t.kratos.state.set_identity_state(disabled, "inactive")
    await asyncio.sleep(0.35)  # the cache TTL passes
    for pat in (gone_pat, off_pat):
        answer = await decide(http, t, "/api/users/1", bearer(pat))
        assert answer.status == 401
        assert "no longer active" in answer.headers["WWW-Authenticate"]


async def test_nginx_style_keeps_401_and_403(tokens: Tokens, http: aiohttp.ClientSession) -> None:
    secret, _ = await tokens.mint(scopes=("write:resources",))
    async with http.get(tokens.url, headers=forwarded("/nginx/x") | bearer(secret)) as response:
        assert response.status == 403 and await response.read() == b""
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    async with http.get(tokens.url, headers=forwarded("/nginx/x") | bearer("pat_x")) as response:
        assert response.status == 401 and await response.read() == b""


async def test_sessions_and_tokens_side_by_side(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    owner = tokens.identity()
    session_token, _ = tokens.kratos.state.create_session(owner)
    pat, _ = await tokens.mint(owner=owner)
    by_session = await decide(http, tokens, "/either/x", {"X-Session-Token": session_token})
    by_pat = await decide(http, tokens, "/either/x", bearer(pat))
    assert by_session.status == by_pat.status == 200
    assert by_session.headers["X-User-ID"] == by_pat.headers["X-User-ID"] == owner
    assert "X-Session-ID" in by_session.headers and "X-Token-ID" in by_pat.headers
    ory_bearer = await decide(http, tokens, "/either/x", bearer(session_token))
    assert ory_bearer.status == 200 and "X-Session-ID" in ory_bearer.headers
