"""Fixtures of the credentials tests: a store of each back-end, each test on its own tables."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from handlers.credentials.service import Credentials
from handlers.credentials.store import TokenStore
from handlers.credentials.store_pg import PostgresStore
from handlers.credentials.store_sqlite import SqliteStore
from tests.conftest import Kratos, Service, ServiceFactory


def fresh_schema() -> str:
    return f"kh_tok_{uuid.uuid4().hex[:10]}"


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema(database_url: str) -> AsyncIterator[str]:
    """A Postgres schema of this test's own (``TOKENS_DATABASE_SCHEMA``), dropped after."""
    schema = fresh_schema()
    yield schema
    await drop_schema(database_url, schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> AsyncIterator[TokenStore]:
    made: TokenStore
    schema = ""
    if request.param == "sqlite":
        made = SqliteStore(str(tmp_path / "tokens.sqlite3"))
    else:
        schema = fresh_schema()
        made = PostgresStore(database_url, schema=schema, migrate=True)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
        if schema:
            await drop_schema(database_url, schema)


TOKEN_RULES = """
[[rules]]
id = "users-read"
paths = ["/api/users/**"]
methods = ["GET"]
authenticators = ["token"]
authorizer = { type = "scopes", scopes = ["read:users"] }

[[rules]]
id = "team-admin"
paths = ["/api/team/**"]
authenticators = ["token"]
authorizer = { type = "scopes", scopes = ["admin:team"] }

[[rules]]
id = "services-only"
paths = ["/internal/**"]
authenticators = ["token"]
token_kinds = ["svc"]
authorizer = "allow"

[[rules]]
id = "either"
paths = ["/either/**"]
authenticators = ["session_cookie", "session_token", "token"]
authorizer = "allow"

[[rules]]
id = "editors"
paths = ["/edit/**"]
authenticators = ["token"]
authorizer = { type = "roles", roles = ["editor"] }

[[rules]]
id = "nginx-style"
paths = ["/nginx/**"]
authenticators = ["token"]
error_style = "nginx"
authorizer = { type = "scopes", scopes = ["read:users"] }

[[rules]]
id = "tagged"
paths = ["/tagged/**"]
authenticators = ["token"]
authorizer = "allow"
headers = { "X-Token-Kind" = "{{ token.kind }}" }
"""


@dataclass
class Tokens:
    """The service with token rules, and ways to mint tokens as the service itself would."""

    service: Service
    kratos: Kratos

    @property
    def credentials(self) -> Credentials:
        credentials = self.service.running.shared.credentials
        assert credentials is not None
        return credentials

    @property
    def url(self) -> str:
        return self.service.internal_url + "/decisions"

    def identity(self, roles: list[str] | None = None) -> str:
        state = self.kratos.state
        made = state.add_identity(
            f"owner-{len(state.identities)}@example.com",
            "correct horse battery staple",
            metadata_public={"roles": roles or []},
        )
        return str(made["id"])

    async def mint(
        self,
        kind: str = "pat",
        *,
        owner: str | None = None,
        scopes: tuple[str, ...] = ("read:users",),
        expires_in: float | None = 86400,
        rate_limit: int = 0,
    ) -> tuple[str, str]:
        """(secret, token id) of a fresh token."""
        owner = owner or (self.identity() if kind == "pat" else f"{kind}-owner")
        made = await self.credentials.issue(
            kind,  # type: ignore[arg-type]
            owner=owner,
            name=f"{kind} token",
            scopes=scopes,
            expires_at=None if expires_in is None else time.time() + expires_in,
            created_by="test",
            origin="cli",
            rate_limit=rate_limit,
        )
        return made.secret, made.record.id


def forwarded(uri: str, method: str = "GET") -> dict[str, str]:
    return {
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "api.example.com",
        "X-Forwarded-Uri": uri,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


TokensFactory = Callable[..., Awaitable[Tokens]]


@pytest.fixture
def token_rules(tmp_path: Path) -> Path:
    path = tmp_path / "token-rules.toml"
    path.write_text(TOKEN_RULES)
    return path


@pytest.fixture
async def start_tokens(
    kratos: Kratos, start_service: ServiceFactory, token_rules: Path, tmp_path: Path
) -> TokensFactory:
    """``await start_tokens(**ENV)``: the service with token rules and its own SQLite file
    (``DATABASE_URL`` in ``ENV`` puts it on Postgres instead)."""

    async def start(**env: str) -> Tokens:
        settings = {
            "KRATOS_PUBLIC_URL": kratos.public_url,
            "KRATOS_ADMIN_URL": kratos.admin_url,
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "DECISIONS_RULES_FILE": str(token_rules),
            "TOKENS_SQLITE_FILE": str(tmp_path / "tokens.sqlite3"),
            **env,
        }
        service = await start_service(**settings)
        kratos.state.public_base_url = service.public_url
        return Tokens(service, kratos)

    return start


@pytest.fixture
async def tokens(start_tokens: TokensFactory) -> Tokens:
    return await start_tokens()
