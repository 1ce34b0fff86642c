"""The token page and its JSON API through the real public listener, signed in with a Kratos
stand-in session: create (shown once), use, regenerate, revoke, CSRF, AAL2, other people's
tokens, and the leak-report endpoint."""

from __future__ import annotations

import hashlib
import hmac
import re

import aiohttp
import orjson

from handlers.hooks.hook_keys import OUTBOX
from tests.credentials.conftest import Tokens, TokensFactory, bearer, forwarded

CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
SECRET = re.compile(r'id="secret-value"[^>]*value="(pat_[0-9A-Za-z]{36})"')


class Browser:
    """A signed-in user's requests to the page (cookie and same-origin headers as sent)."""

    def __init__(self, http: aiohttp.ClientSession, t: Tokens, cookie: str) -> None:
        self.http, self.t, self.cookie = http, t, cookie
        self.base = t.service.public_url + "/tokens"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Cookie": f"ory_kratos_session={self.cookie}", **extra}

    async def get(self, path: str = "/") -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, headers=self.headers()) as response:
            return response.status, (await response.read()).decode(), response

    async def post(
        self, path: str, form: dict[str, str | list[str]], **extra: str
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        data = [(k, v) for k, vs in form.items() for v in ([vs] if isinstance(vs, str) else vs)]
        wanted = {"Sec-Fetch-Site": "same-origin"} | extra
        headers = self.headers(**{name: value for name, value in wanted.items() if value})
        async with self.http.post(
            self.base + path, data=data, headers=headers, allow_redirects=False
        ) as response:
            return response.status, (await response.read()).decode(), response

    async def csrf(self) -> str:
        _, html, _ = await self.get()
        match = CSRF.search(html)
        assert match is not None
        return match.group(1)

    async def create(self, name: str = "CLI", scopes: tuple[str, ...] = ("read:users",)) -> str:
        form = {
            "csrf_token": await self.csrf(),
            "name": name,
            "scopes": list(scopes),
            "expiry": "30",
        }
        status, html, _ = await self.post("/create", form)
        assert status == 201, html
        match = SECRET.search(html)
        assert match is not None
        return match.group(1)


def user(
    t: Tokens, *, roles: list[str] | None = None, aal: str = "aal1"
) -> tuple[str, Browser, str]:
    """(identity id, browser, session token) of a fresh signed-in user."""
    identity = t.identity(roles=roles)
    token, cookie = t.kratos.state.create_session(identity, aal=aal)
    return (
        identity,
        Browser(aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()), t, cookie),
        token,
    )


async def decision(http: aiohttp.ClientSession, t: Tokens, secret: str) -> int:
    async with http.get(t.url, headers=forwarded("/api/users/1") | bearer(secret)) as response:
        return response.status


async def test_signed_out_users_are_asked_to_sign_in(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    async with http.get(tokens.service.public_url + "/tokens/") as response:
        html = (await response.read()).decode()
        assert response.status == 401
        assert "/self-service/login/browser?return_to=" in html
        assert response.headers["Cache-Control"] == "no-store"
    async with http.get(tokens.service.public_url + "/tokens/api/tokens") as response:
        assert response.status == 401
        assert (await response.json())["error"]["id"] == "unauthorized"


async def test_create_show_once_use_regenerate_revoke(
    tokens: Tokens, http: aiohttp.ClientSession
) -> None:
    identity, browser, _ = user(tokens)
    try:
        status, html, response = await browser.get()
        assert status == 200 and "No active tokens." in html
        assert response.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        secret = await browser.create("CI pipeline", ("read:users", "read:resources"))
        assert await decision(http, tokens, secret) == 200
        _, html, _ = await browser.get()
        assert secret not in html  # shown once: never again
        assert "CI pipeline" in html and "read:resources" in html and "Last used: just now" in html
        token_id = re.search(r"/tokens/(tok_[0-9A-Za-z]{16})/revoke", html).group(1)  # type: ignore[union-attr]
        status, html, _ = await browser.post(
            f"/{token_id}/regenerate", {"csrf_token": await browser.csrf()}
        )
        assert status == 201
        renewed = SECRET.search(html).group(1)  # type: ignore[union-attr]
        assert renewed != secret
        assert await decision(http, tokens, secret) == 401
        assert await decision(http, tokens, renewed) == 200
        _, html, _ = await browser.get()
        new_id = re.search(r"/tokens/(tok_[0-9A-Za-z]{16})/revoke", html).group(1)  # type: ignore[union-attr]
        status, html, _ = await browser.get(f"/{new_id}/revoke")
        assert status == 200 and "Revoke “CI pipeline”?" in html
        status, _, response = await browser.post(
            f"/{new_id}/revoke", {"csrf_token": await browser.csrf()}
        )
        assert status == 303 and response.headers["Location"] == "/tokens/?done=revoked"
        assert await decision(http, tokens, renewed) == 401
        _, html, _ = await browser.get("/?done=revoked")
        assert "Token revoked." in html and "Revoked tokens (last 30 days)" in html
        assert html.count("Reason: ") == 2 and "Regenerated" in html and "Manual revocation" in html
        records = await tokens.credentials.store.listing(
            kind="pat", owner=identity, revoked_since=0
        )
        assert {r.revoked_by for r in records} == {identity}
    finally:
        await browser.http.close()


async def test_forms_without_the_sessions_csrf_token_are_refused(tokens: Tokens) -> None:
    identity, browser, _ = user(tokens)
    other_id, other, _ = user(tokens)
    try:
        form = {"name": "x", "scopes": ["read:users"], "expiry": "7"}
        assert (await browser.post("/create", form))[0] == 403
        assert (await browser.post("/create", form | {"csrf_token": "0" * 64}))[0] == 403
        theirs = await other.csrf()
        assert (await browser.post("/create", form | {"csrf_token": theirs}))[0] == 403
        mine = await browser.csrf()
        cross = await browser.post(
            "/create", form | {"csrf_token": mine}, **{"Sec-Fetch-Site": "cross-site"}
        )
        assert cross[0] == 403
        older = {"Origin": "https://evil.example", "Sec-Fetch-Site": ""}  # no Sec-Fetch-Site
        evil = await browser.post("/create", form | {"csrf_token": mine}, **older)
        assert evil[0] == 403
        assert await tokens.credentials.store.listing(kind="pat", owner=identity) == []
        assert (await browser.post("/create", form | {"csrf_token": mine}))[0] == 201
    finally:
        await browser.http.close()
        await other.http.close()
    assert other_id


async def test_other_peoples_tokens_do_not_exist(tokens: Tokens) -> None:
    _, alice, _ = user(tokens)
    _, bob, _ = user(tokens)
    try:
        await alice.create("alices laptop")
        _, html, _ = await alice.get()
        token_id = re.search(r"/tokens/(tok_[0-9A-Za-z]{16})/revoke", html).group(1)  # type: ignore[union-attr]
        assert (await bob.get(f"/{token_id}/revoke"))[0] == 404
        assert (await bob.post(f"/{token_id}/revoke", {"csrf_token": await bob.csrf()}))[0] == 404
        assert "alices laptop" not in (await bob.get())[1]
        assert "alices laptop" in (await alice.get())[1]
    finally:
        await alice.http.close()
        await bob.http.close()


async def test_the_scopes_offered_follow_the_roles_and_problems_are_named(tokens: Tokens) -> None:
    _, plain, _ = user(tokens)
    _, admin, _ = user(tokens, roles=["admin"])
    try:
        assert "admin:team" not in (await plain.get())[1]
        assert "admin:team" in (await admin.get())[1]
        form = {
            "csrf_token": await plain.csrf(),
            "name": "",
            "scopes": ["admin:team"],
            "expiry": "never",
        }
        status, html, _ = await plain.post("/create", form)
        assert status == 422
        for problem in (
            "Give the token a name.",
            "Choose scopes from the list.",
            "Tokens must expire.",
        ):
            assert problem in html
        assert 'aria-invalid="true"' in html
        await admin.create("ops", ("admin:team",))
    finally:
        await plain.http.close()
        await admin.http.close()


async def test_an_aal2_session_can_be_required(start_tokens: TokensFactory) -> None:
    t = await start_tokens(TOKENS_REQUIRE_AAL2="true")
    _, weak, _ = user(t, aal="aal1")
    _, strong, _ = user(t, aal="aal2")
    try:
        _, html, _ = await weak.get()
        assert "Creating a token needs a second factor." in html and "aal=aal2" in html
        async with weak.http.get(weak.base + "/api/tokens", headers=weak.headers()) as r:
            csrf = (await r.json())["csrf_token"]  # the page shows no form to take it from
        form = {"csrf_token": csrf, "name": "x", "scopes": ["read:users"], "expiry": "7"}
        assert (await weak.post("/create", form))[0] == 403
        assert await strong.create()
    finally:
        await weak.http.close()
        await strong.http.close()


async def test_the_json_api(tokens: Tokens, http: aiohttp.ClientSession) -> None:
    identity, browser, session_token = user(tokens)
    api = tokens.service.public_url + "/tokens/api"
    native = {"X-Session-Token": session_token}
    try:
        async with http.get(api + "/scopes", headers=native) as r:
            scopes = await r.json()
            assert (
                r.status == 200
                and {"name": "read:users", "description": "Read user data"} in scopes["scopes"]
            )
        body = {"name": "script", "scopes": ["read:users"], "expires_in_days": 7}
        async with http.post(api + "/tokens", json=body, headers=native) as r:
            made = await r.json()
            assert r.status == 201 and r.headers["Cache-Control"] == "no-store"
        assert await decision(http, tokens, made["token"]) == 200
        assert made["record"]["owner"] == identity and "token_hash" not in made["record"]
        async with http.post(api + "/tokens", json=body | {"scopes": []}, headers=native) as r:
            assert r.status == 422 and "scopes" in (await r.json())["error"]["details"]
        cookie = browser.headers()
        async with http.post(api + "/tokens", json=body, headers=cookie) as r:
            assert r.status == 403 and (await r.json())["error"]["id"] == "csrf_failed"
        async with http.get(api + "/tokens", headers=cookie) as r:
            listing = await r.json()
            assert [t["name"] for t in listing["tokens"]] == ["script"]
        token_id = listing["tokens"][0]["id"]
        csrf = {"X-CSRF-Token": listing["csrf_token"]}
        async with http.post(api + f"/tokens/{token_id}/regenerate", headers=cookie | csrf) as r:
            again = await r.json()
            assert r.status == 201
        assert await decision(http, tokens, made["token"]) == 401
        async with http.delete(
            api + f"/tokens/{again['record']['id']}", headers=cookie | csrf
        ) as r:
            assert r.status == 200 and (await r.json())["record"]["revoked_by"] == identity
        assert await decision(http, tokens, again["token"]) == 401
        async with http.delete(api + f"/tokens/{again['record']['id']}", headers=native) as r:
            assert r.status == 404
    finally:
        await browser.http.close()


async def test_leak_reports(start_tokens: TokensFactory, http: aiohttp.ClientSession) -> None:
    t = await start_tokens(TOKENS_LEAK_SECRETS="old-secret,scanner-secret")
    url = t.service.public_url + "/tokens/leaks"
    owner = t.identity()
    leaked, leaked_id = await t.mint(owner=owner)
    gone, gone_id = await t.mint()
    await t.credentials.revoke(gone_id, by="test")
    assert await decision(http, t, leaked) == 200
    report = [
        {
            "token": leaked,
            "type": "kratos_hooks_pat",
            "url": "https://gist.example/1",
            "source": "gist",
        },
        {"token": gone},
        {"token": "pat_" + "x" * 36},
        {"token": "not a token"},
    ]
    body = orjson.dumps(report)
    async with http.post(url, data=body, headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with http.post(url, data=body, headers={"Authorization": "Bearer scanner-secret"}) as r:
        answer = await r.json()
    assert answer["results"] == [
        {"active": True, "result": "revoked", "token_id": leaked_id},
        {"active": False, "result": "inactive", "token_id": gone_id},
        {"active": False, "result": "malformed"},
        {"active": False, "result": "malformed"},
    ]
    assert leaked not in orjson.dumps(answer).decode()
    assert await decision(http, t, leaked) == 401
    record = await t.credentials.store.by_id(leaked_id)
    assert record is not None and (record.revoked_reason, record.revoked_by) == (
        "leaked",
        "leak-report:gist",
    )
    history = [e.action for e in await t.credentials.store.history(leaked_id)]
    assert history == ["create", "leak_report"]
    outbox = t.service.running.internal_app[OUTBOX]
    entries = {e.key: e for e in await outbox.entries(include_delivered=True, limit=1000)}
    entry = entries[f"event:TOKEN_LEAKED:{leaked_id}"]
    data = entry.payload["body"]["data"]
    assert entry.payload["body"]["pattern"] == "TOKEN_LEAKED"
    assert data["token"]["id"] == leaked_id and data["token"]["revokedReason"] == "leaked"
    assert data["recipients"][0]["id"] == owner and data["recipients"][0]["email"].startswith(
        "owner-"
    )
    assert leaked not in orjson.dumps(entry.payload).decode()
    # Signed instead of a bearer secret; a second report of the same token changes nothing.
    again = orjson.dumps({"tokens": [leaked]})
    signature = hmac.new(b"old-secret", again, hashlib.sha256).hexdigest()
    async with http.post(url, data=again, headers={"X-Signature-256": f"sha256={signature}"}) as r:
        assert (await r.json())["results"] == [
            {"active": False, "result": "inactive", "token_id": leaked_id}
        ]
    async with http.post(url, data=again, headers={"X-Signature-256": "sha256=" + "0" * 64}) as r:
        assert r.status == 401


async def test_leak_reports_need_a_secret(tokens: Tokens, http: aiohttp.ClientSession) -> None:
    async with http.post(tokens.service.public_url + "/tokens/leaks", json={"tokens": []}) as r:
        assert r.status == 503
        assert "TOKENS_LEAK_SECRETS" in (await r.json())["error"]["reason"]


async def test_expiry_warnings_are_sent_once_through_the_outbox(tokens: Tokens) -> None:
    owner = tokens.identity()
    _, soon_id = await tokens.mint(owner=owner, expires_in=3 * 86400)
    _, later_id = await tokens.mint(owner=owner, expires_in=60 * 86400)
    _, stale_id = await tokens.mint(owner=owner, expires_in=-5)
    assert await tokens.credentials.expiry_pass() == 1
    assert await tokens.credentials.expiry_pass() == 0  # once
    outbox = tokens.service.running.internal_app[OUTBOX]
    keys = {e.key: e for e in await outbox.entries(include_delivered=True, limit=1000)}
    entry = keys[f"event:TOKEN_EXPIRING:{soon_id}"]
    assert entry.payload["body"]["data"]["recipients"][0]["id"] == owner
    assert f"event:TOKEN_EXPIRING:{later_id}" not in keys
    assert [e.action for e in await tokens.credentials.store.history(stale_id)] == [
        "create",
        "expire",
    ]
