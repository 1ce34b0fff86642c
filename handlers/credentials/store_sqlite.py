"""The embedded token store: one SQLite file, stdlib ``sqlite3`` on one thread of its own.

Without ``DATABASE_URL`` the service still issues and checks tokens (``make run`` needs no
database): every operation is one function run on the store's single thread, each write in
its own transaction, so coroutines never interleave inside one and the event loop never
blocks on the disk. WAL mode lets the CLI (another process) and several workers use the file
at once; revocations reach the other processes through the file itself (``revocation.py``
polls ``revoked_since``). One host only: the file is not shared between machines.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from handlers.credentials import migrate, store_sql
from handlers.credentials.credential_metrics import STORE_ERRORS, STORE_QUERIES
from handlers.credentials.store import (
    AuditAction,
    AuditEntry,
    NotMigrated,
    StoreUnavailable,
    TokenRecord,
    Use,
    record_from_row,
    record_values,
)
from proxy.kernel.tokens import TokenKind

T = TypeVar("T")
BUSY_TIMEOUT_MS = 2000


class SqliteStore:
    backend = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    # --- the store's thread ----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        migrate.migrate_sqlite(self.path)  # the embedded file is ours: always current
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        applied = {row[0] for row in conn.execute(store_sql.APPLIED_MIGRATIONS)}
        missing = [m for m in migrate.migration_ids() if m not in applied]
        if missing:
            conn.close()
            raise NotMigrated(f"missing migrations {missing}")
        return conn

    async def _run(self, op: str, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn or await self._open()
        assert self._executor is not None
        STORE_QUERIES.labels(self.backend, op).count += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, conn)
        except sqlite3.Error as exc:
            STORE_ERRORS.labels(self.backend).inc()
            raise StoreUnavailable(type(exc).__name__) from exc

    async def _open(self) -> sqlite3.Connection:
        async with self._lock:
            if self._conn is None:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(1, thread_name_prefix="kh-tokens-sqlite")
                loop = asyncio.get_running_loop()
                try:
                    self._conn = await loop.run_in_executor(self._executor, self._connect)
                except (sqlite3.Error, OSError) as exc:
                    STORE_ERRORS.labels(self.backend).inc()
                    raise StoreUnavailable(type(exc).__name__) from exc
            return self._conn

    async def open(self) -> None:
        await self._open()

    async def close(self) -> None:
        conn, executor = self._conn, self._executor
        self._conn = self._executor = None
        if executor is not None:
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            executor.shutdown(wait=False)

    # --- operations ----------------------------------------------------------------------
    async def insert(self, record: TokenRecord, audit: AuditEntry) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute(store_sql.INSERT, record_values(record))
                conn.execute(store_sql.INSERT_AUDIT, store_sql.audit_values(audit))

        await self._run("insert", work)

    async def by_hash(self, token_hash: str) -> TokenRecord | None:
        return await self._run("by_hash", lambda c: _one(c, store_sql.BY_HASH, (token_hash,)))

    async def by_id(self, token_id: str) -> TokenRecord | None:
        return await self._run("by_id", lambda c: _one(c, store_sql.BY_ID, (token_id,)))

    async def listing(
        self,
        *,
        kind: TokenKind | None = None,
        owner: str | None = None,
        revoked_since: float | None = None,
        limit: int = 500,
    ) -> list[TokenRecord]:
        sql, args = store_sql.listing(kind, owner, revoked_since, limit)
        return await self._run(
            "listing", lambda c: [record_from_row(r) for r in c.execute(sql, args)]
        )

    async def revoke(
        self, token_id: str, *, by: str, reason: str, at: float, action: AuditAction = "revoke"
    ) -> TokenRecord | None:
        def work(conn: sqlite3.Connection) -> TokenRecord | None:
            with _transaction(conn):
                return _revoke(conn, token_id, by, reason, at, action)

        return await self._run("revoke", work)

    async def replace(self, old_id: str, new: TokenRecord, *, by: str) -> TokenRecord | None:
        def work(conn: sqlite3.Connection) -> TokenRecord | None:
            with _transaction(conn):
                old = _revoke(conn, old_id, by, "regenerated", new.created_at, "regenerate", new.id)
                if old is None:
                    return None
                conn.execute(store_sql.INSERT, record_values(new))
                created = AuditEntry(new.id, "create", by, {"regenerated_from": old_id})
                conn.execute(store_sql.INSERT_AUDIT, store_sql.audit_values(created))
                return old

        return await self._run("replace", work)

    async def touch(self, uses: Sequence[Use]) -> None:
        rows = [(u.at, u.ip, u.token_id, u.at) for u in uses]

        def work(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany(store_sql.TOUCH, rows)

        if rows:
            await self._run("touch", work)

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        return await self._run(
            "revoked_since",
            lambda c: [(r[0], float(r[1])) for r in c.execute(store_sql.REVOKED_SINCE, (since,))],
        )

    async def claim_expiring(self, now: float, horizon: float) -> list[TokenRecord]:
        def work(conn: sqlite3.Connection) -> list[TokenRecord]:
            with _transaction(conn):
                rows = conn.execute(store_sql.CLAIM_EXPIRING, (now, now, horizon)).fetchall()
            return [record_from_row(r) for r in rows]

        return await self._run("claim_expiring", work)

    async def unclaim_expiring(self, token_id: str) -> None:
        await self._run(
            "unclaim_expiring", lambda c: c.execute(store_sql.UNCLAIM_EXPIRING, (token_id,))
        )

    async def note_expired(self, now: float) -> list[TokenRecord]:
        def work(conn: sqlite3.Connection) -> list[TokenRecord]:
            with _transaction(conn):
                rows = conn.execute(store_sql.NOTE_EXPIRED, (now, now)).fetchall()
                records = [record_from_row(r) for r in rows]
                for record in records:
                    entry = AuditEntry(record.id, "expire", "system", {}, at=now)
                    conn.execute(store_sql.INSERT_AUDIT, store_sql.audit_values(entry))
            return records

        return await self._run("note_expired", work)

    async def audit(self, entry: AuditEntry) -> None:
        await self._run(
            "audit", lambda c: c.execute(store_sql.INSERT_AUDIT, store_sql.audit_values(entry))
        )

    async def history(self, token_id: str) -> list[AuditEntry]:
        return await self._run(
            "history",
            lambda c: [
                store_sql.audit_from_row(r) for r in c.execute(store_sql.HISTORY, (token_id,))
            ],
        )


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection:
    the write lock is taken up front, so two processes never deadlock upgrading a read."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc is None else "ROLLBACK")


def _one(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> TokenRecord | None:
    row = conn.execute(sql, args).fetchone()
    return None if row is None else record_from_row(row)


def _revoke(
    conn: sqlite3.Connection,
    token_id: str,
    by: str,
    reason: str,
    at: float,
    action: AuditAction,
    replaced_by: str = "",
) -> TokenRecord | None:
    row = conn.execute(store_sql.REVOKE, (at, by, reason, token_id)).fetchone()
    if row is None:
        return None
    detail = {"reason": reason} | ({"replaced_by": replaced_by} if replaced_by else {})
    entry = AuditEntry(token_id, action, by, detail, at=at)
    conn.execute(store_sql.INSERT_AUDIT, store_sql.audit_values(entry))
    return record_from_row(row)


def default_path(spool_dir: str) -> str:
    return str(Path(spool_dir) / "tokens.sqlite3")
