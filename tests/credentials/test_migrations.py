"""Schema migrations: up from an empty database, idempotent, and an old schema is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from handlers.credentials import migrate
from handlers.credentials.store import NotMigrated
from handlers.credentials.store_pg import PostgresStore
from handlers.credentials.store_sqlite import SqliteStore

EXPECTED = ["0001_tokens", "0002_audit_append_only"]


async def test_postgres_up_from_empty_then_nothing_to_do(database_url: str, pg_schema: str) -> None:
    assert migrate.migration_ids() == EXPECTED
    assert await asyncio.to_thread(migrate.migrate_postgres, database_url, pg_schema) == EXPECTED
    assert await asyncio.to_thread(migrate.migrate_postgres, database_url, pg_schema) == []
    uri = migrate.postgres_uri(database_url, pg_schema)
    assert await asyncio.to_thread(migrate.pending, uri) == []
    conn = await asyncpg.connect(database_url)
    try:
        tables = {
            r[0]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                pg_schema,
            )
        }
    finally:
        await conn.close()
    assert {"kh_tokens", "kh_token_audit", "_yoyo_migration"} <= tables


async def test_concurrent_migrators_apply_each_migration_once(
    database_url: str, pg_schema: str
) -> None:
    await asyncio.to_thread(migrate._ensure_schema, database_url, pg_schema)
    results = await asyncio.gather(
        *(asyncio.to_thread(migrate.migrate_postgres, database_url, pg_schema) for _ in range(3))
    )
    assert sorted(m for applied in results for m in applied) == EXPECTED


async def test_an_unmigrated_postgres_is_refused_until_migrated(
    database_url: str, pg_schema: str
) -> None:
    plain = PostgresStore(database_url, schema=pg_schema)
    with pytest.raises(NotMigrated, match="kratos-hooks db migrate"):
        await plain.open()
    migrating = PostgresStore(database_url, schema=pg_schema, migrate=True)
    await migrating.open()  # DB_MIGRATE=true
    await migrating.close()
    await plain.open()  # now current
    assert await plain.by_id("tok_x") is None
    await plain.close()


def test_sqlite_up_from_empty_and_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "tokens.sqlite3")
    assert migrate.migrate_sqlite(path) == EXPECTED
    assert migrate.migrate_sqlite(path) == []
    assert migrate.pending(migrate.sqlite_uri(path)) == []


async def test_the_embedded_file_is_migrated_on_open(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "fresh.sqlite3"))
    assert await store.by_id("tok_x") is None  # opened lazily, migrated, answered
    await store.close()


def test_the_yoyo_url_keeps_asyncpg_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    assert (
        migrate.postgres_uri("postgresql://kh:pw@db:5432/kh", "tokens")
        == "postgresql+psycopg://kh:pw@db:5432/kh?sslmode=disable&schema=tokens"
    )
    assert migrate.postgres_uri("postgresql://kh@db/kh?sslmode=require").endswith(
        "?sslmode=require"
    )
    monkeypatch.setenv("PGPASSWORD", "secret")
    assert "password=secret" in migrate.postgres_uri("postgresql://kh@db/kh")
