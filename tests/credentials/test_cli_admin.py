"""``kratos-hooks db migrate`` and ``tokens …`` on the command line, and the API-key admin API
on the internal listener with its OpenAPI document."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import aiohttp
import pytest

from handlers.credentials import admin_api
from proxy.cli import main
from tests.credentials.conftest import TokensFactory, bearer, forwarded

ADMIN = {"X-Kratos-Hooks-Admin-Key": "admin-secret"}


async def cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(argv)

    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "tokens.sqlite3"
    monkeypatch.delenv("KRATOS_HOOKS_CONFIG", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("TOKENS_SQLITE_FILE", str(path))
    return path


async def test_db_migrate_on_postgres_then_current(
    monkeypatch: pytest.MonkeyPatch, database_url: str, pg_schema: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TOKENS_DATABASE_SCHEMA", pg_schema)
    code, out, err = await cli(["db", "migrate", "--dry-run"])
    assert code == 0 and "would apply 0001_tokens" in out
    code, out, err = await cli(["db", "migrate"])
    assert code == 0 and out.split() == [
        "applied",
        "0001_tokens",
        "applied",
        "0002_audit_append_only",
    ]
    assert "schema migrated" in err
    code, out, err = await cli(["db", "migrate"])
    assert (code, out) == (0, "") and "schema current" in err


async def test_service_tokens_from_the_cli_reach_a_running_replica(
    start_tokens: TokensFactory, http: aiohttp.ClientSession, cli_env: Path
) -> None:
    t = await start_tokens(TOKENS_SQLITE_FILE=str(cli_env))
    code, out, err = await cli(
        ["tokens", "create-service", "billing", "--scope", "read:users", "--expires-in-days", "30"]
    )
    assert code == 0
    secret = out.strip()
    assert t.credentials.format.well_formed(secret) and secret.startswith("svc_")
    token_id = err.split()[1]
    async with http.get(t.url, headers=forwarded("/api/users/1") | bearer(secret)) as r:
        assert r.status == 200 and r.headers["X-Service-Name"] == "billing"
    code, out, _ = await cli(["tokens", "list", "--kind", "svc"])
    assert code == 0 and token_id in out and "billing" in out and secret not in out
    code, out, _ = await cli(["tokens", "revoke", token_id, "--reason", "rotated"])
    assert code == 0
    for _ in range(100):  # the replica polls the file: refused within a second
        async with http.get(t.url, headers=forwarded("/api/users/1") | bearer(secret)) as r:
            if r.status == 401:
                break
        await asyncio.sleep(0.02)
    assert r.status == 401
    code, out, _ = await cli(["tokens", "show", token_id])
    assert code == 0 and "revoked_reason" in out and "rotated" in out
    assert "create" in out and "revoke" in out and secret not in out
    assert (await cli(["tokens", "revoke", token_id]))[0] == 1
    assert (await cli(["tokens", "create-service", "x", "--scope", "BAD"]))[0] == 2


async def test_the_admin_api_issues_lists_regenerates_and_revokes_keys(
    start_tokens: TokensFactory, http: aiohttp.ClientSession
) -> None:
    t = await start_tokens(TOKENS_ADMIN_KEYS="old,admin-secret")
    base = t.service.internal_url + "/admin/tokens"
    body = {
        "organization": "org-7",
        "name": "CRM sync",
        "scopes": ["read:users"],
        "expires_in_days": 90,
    }
    async with http.post(base + "/keys", json=body) as r:
        assert r.status == 401
    async with http.post(base + "/keys", json=body | {"scopes": ["nope"]}, headers=ADMIN) as r:
        assert r.status == 400 and "scopes" in (await r.json())["error"]["reason"]
    async with http.post(
        base + "/keys", json=body | {"rate_limit_per_minute": 100}, headers=ADMIN
    ) as r:
        made = await r.json()
        assert r.status == 201 and made["token"].startswith("key_")
    key_id = made["record"]["id"]
    async with http.get(t.url, headers=forwarded("/api/users/1") | bearer(made["token"])) as r:
        assert r.status == 200 and r.headers["X-Org-ID"] == "org-7"
    async with http.get(base + "/keys?organization=org-7", headers=ADMIN) as r:
        assert [k["id"] for k in (await r.json())["keys"]] == [key_id]
    async with http.post(base + f"/keys/{key_id}/regenerate", headers=ADMIN) as r:
        renewed = await r.json()
        assert r.status == 201 and renewed["record"]["rate_limit_per_minute"] == 100
    async with http.get(t.url, headers=forwarded("/api/users/1") | bearer(made["token"])) as r:
        assert r.status == 401
    new_id = renewed["record"]["id"]
    async with http.delete(base + f"/keys/{new_id}", headers=ADMIN) as r:
        assert r.status == 200
    async with http.get(base + f"/keys/{key_id}", headers=ADMIN) as r:
        shown = await r.json()
        assert [a["action"] for a in shown["audit"]] == ["create", "regenerate"]
    async with http.delete(base + f"/keys/{new_id}", headers=ADMIN) as r:
        assert r.status == 404
    pat, pat_id = await t.mint()
    async with http.get(base + f"/keys/{pat_id}", headers=ADMIN) as r:
        assert r.status == 404  # the admin API manages API keys only
    assert pat


async def test_the_admin_api_needs_its_own_credential(
    tokens,
    http: aiohttp.ClientSession,  # type: ignore[no-untyped-def]
) -> None:
    async with http.get(tokens.service.internal_url + "/admin/tokens/keys") as r:
        assert r.status == 503 and "TOKENS_ADMIN_KEYS" in (await r.json())["error"]["reason"]


async def test_the_openapi_document_describes_every_admin_route(
    tokens,
    http: aiohttp.ClientSession,  # type: ignore[no-untyped-def]
) -> None:
    async with http.get(tokens.service.internal_url + "/admin/tokens/openapi.json") as r:
        assert r.status == 200
        document = await r.json()
    assert document["openapi"].startswith("3.1")
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = {(m, p.replace("{token_id}", "{token_id}")) for m, p, _ in admin_api.ROUTES}
    assert described == served
    refs = json.dumps(document).count("#/components/schemas/")
    assert refs and all(
        name in document["components"]["schemas"]
        for name in ("Token", "Error", "Made", "KeyRequest")
    )
