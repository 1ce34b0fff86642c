"""Schema migrations of the token store, applied by yoyo-migrations.

The migrations are the files in ``migrations/`` (plain SQL, one Python step where the two
dialects differ), applied in order and recorded in yoyo's own tables, so ``kratos-hooks db
migrate`` is safe to run again and again, and on several replicas at once (yoyo takes a lock
row; a second migrator waits for the first). Postgres is migrated when an operator asks — the
command, or ``DB_MIGRATE=true`` at start-up; the embedded SQLite file is the service's own and
is migrated whenever it is opened.

Everything here blocks (yoyo drives DB-API drivers: psycopg, sqlite3): callers run it in a
thread. The URL is translated from the one asyncpg reads: the same password rules
(``proxy.kernel.pg``: from the URL or ``PGPASSWORD``) and TLS off unless ``sslmode`` is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MIGRATIONS = Path(__file__).parent / "migrations"


# Read once at import: stores check them on every connection, from the event loop.
_IDS = tuple(sorted(p.stem for p in MIGRATIONS.iterdir() if p.suffix in {".sql", ".py"}))


def migration_ids() -> list[str]:
    """The ids of this release's migrations, in order (what a current schema has applied)."""
    return list(_IDS)


def postgres_uri(database_url: str, schema: str = "") -> str:
    """yoyo's URL (psycopg 3) for an asyncpg ``postgresql://`` URL (pure)."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    if "sslmode" not in query and not os.environ.get("PGSSLMODE"):
        query["sslmode"] = "disable"
    if schema:
        query["schema"] = schema
    netloc = parts.netloc
    if parts.password is None and os.environ.get("PGPASSWORD"):
        # yoyo passes no password of its own: psycopg would read ~/.pgpass instead.
        query.setdefault("password", os.environ["PGPASSWORD"])
    return urlunsplit(("postgresql+psycopg", netloc, parts.path, urlencode(query), ""))


def sqlite_uri(path: str) -> str:
    return "sqlite:///" + str(Path(path).resolve())


def _ensure_schema(database_url: str, schema: str) -> None:
    import psycopg

    uri = postgres_uri(database_url).replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def apply(uri: str) -> list[str]:
    """Apply what ``uri``'s database lacks; the ids applied (empty: it was current)."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(uri)
    try:
        migrations = read_migrations(str(MIGRATIONS))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()


def pending(uri: str) -> list[str]:
    """What ``db migrate`` would apply."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(uri)
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(MIGRATIONS)))]
    finally:
        backend.connection.close()


def pending_postgres(database_url: str, schema: str = "") -> list[str]:
    """What ``db migrate`` would apply (yoyo records its own tables even on a dry run)."""
    if schema:
        _ensure_schema(database_url, schema)
    return pending(postgres_uri(database_url, schema))


def migrate_postgres(database_url: str, schema: str = "") -> list[str]:
    if schema:
        _ensure_schema(database_url, schema)
    return apply(postgres_uri(database_url, schema))


def migrate_sqlite(path: str) -> list[str]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return apply(sqlite_uri(path))
