"""The token store on Postgres (``DATABASE_URL``), through asyncpg — shared by every replica.

The pool is made on first use, so the service starts while the database is down (token rules
answer 503 meanwhile). ``open`` checks that the schema is this release's (yoyo's record of
applied migrations) and, with ``DB_MIGRATE=true``, brings it there first; an old schema is
``NotMigrated``, never silently used. A revocation also ``NOTIFY``s ``kh_tokens_revoked`` in
its transaction, which replicas without Redis listen to (``revocation.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from handlers.credentials import migrate, store_sql
from handlers.credentials.credential_metrics import STORE_ERRORS, STORE_QUERIES
from handlers.credentials.store import (
    REVOKED_CHANNEL,
    TABLE,
    AuditAction,
    AuditEntry,
    NotMigrated,
    StoreUnavailable,
    TokenRecord,
    Use,
    record_from_row,
    record_values,
)
from proxy.kernel.pg import bounded, create_pool
from proxy.kernel.tokens import TokenKind

FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_N = store_sql.numbered
INSERT, INSERT_AUDIT, REVOKE = (
    _N(store_sql.INSERT),
    _N(store_sql.INSERT_AUDIT),
    _N(store_sql.REVOKE),
)
TOUCH = (
    f"UPDATE {TABLE} AS t SET last_used_at = u.at, last_used_ip = u.ip"
    f" FROM unnest($1::text[], $2::float8[], $3::text[]) AS u(id, at, ip)"
    f" WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)"
)


class PostgresStore:
    backend = "postgres"

    def __init__(
        self, dsn: str, *, schema: str = "", timeout: float = 2.0, migrate: bool = False
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.timeout = timeout
        self.migrate = migrate
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                if self.migrate:
                    try:
                        await asyncio.to_thread(migrate.migrate_postgres, self.dsn, self.schema)
                    except Exception as exc:  # psycopg / yoyo errors: the database is the cause
                        STORE_ERRORS.labels(self.backend).inc()
                        raise StoreUnavailable(f"migration failed: {type(exc).__name__}") from exc
                try:
                    pool = await create_pool(
                        self.dsn, timeout=self.timeout, max_size=10, schema=self.schema
                    )
                except FAILURES as exc:
                    STORE_ERRORS.labels(self.backend).inc()
                    raise StoreUnavailable(type(exc).__name__) from exc
                try:
                    await self._check_schema(pool)
                except BaseException:
                    await pool.close()
                    raise
                self._pool = pool
            return self._pool

    async def _check_schema(self, pool: asyncpg.Pool) -> None:
        try:
            rows = await bounded(pool, "fetch", store_sql.APPLIED_MIGRATIONS, timeout=self.timeout)
        except asyncpg.UndefinedTableError:
            rows = []
        except FAILURES as exc:
            STORE_ERRORS.labels(self.backend).inc()
            raise StoreUnavailable(type(exc).__name__) from exc
        applied = {row[0] for row in rows}
        missing = [m for m in migrate.migration_ids() if m not in applied]
        if missing:
            raise NotMigrated(
                f"the token tables are not migrated (missing {', '.join(missing)}): run "
                "`kratos-hooks db migrate` or start with DB_MIGRATE=true"
            )

    async def _call(self, op: str, method: str, sql: str, *args: Any) -> Any:
        pool = await self._get_pool()
        STORE_QUERIES.labels(self.backend, op).count += 1
        try:
            return await bounded(pool, method, sql, *args, timeout=self.timeout)
        except FAILURES as exc:
            STORE_ERRORS.labels(self.backend).inc()
            raise StoreUnavailable(type(exc).__name__) from exc

    async def _transaction(self, op: str, work: Any) -> Any:
        pool = await self._get_pool()
        STORE_QUERIES.labels(self.backend, op).count += 1
        try:
            async with pool.acquire(timeout=self.timeout) as conn, conn.transaction():
                return await work(conn)
        except FAILURES as exc:
            STORE_ERRORS.labels(self.backend).inc()
            raise StoreUnavailable(type(exc).__name__) from exc

    async def open(self) -> None:
        await self._get_pool()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def insert(self, record: TokenRecord, audit: AuditEntry) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await conn.execute(INSERT, *record_values(record), timeout=self.timeout)
            await conn.execute(INSERT_AUDIT, *store_sql.audit_values(audit), timeout=self.timeout)

        await self._transaction("insert", work)

    async def by_hash(self, token_hash: str) -> TokenRecord | None:
        row = await self._call("by_hash", "fetchrow", _N(store_sql.BY_HASH), token_hash)
        return None if row is None else record_from_row(row)

    async def by_id(self, token_id: str) -> TokenRecord | None:
        row = await self._call("by_id", "fetchrow", _N(store_sql.BY_ID), token_id)
        return None if row is None else record_from_row(row)

    async def listing(
        self,
        *,
        kind: TokenKind | None = None,
        owner: str | None = None,
        revoked_since: float | None = None,
        limit: int = 500,
    ) -> list[TokenRecord]:
        sql, args = store_sql.listing(kind, owner, revoked_since, limit)
        rows = await self._call("listing", "fetch", _N(sql), *args)
        return [record_from_row(r) for r in rows]

    async def _revoke(
        self,
        conn: asyncpg.Connection,
        token_id: str,
        by: str,
        reason: str,
        at: float,
        action: AuditAction,
        replaced_by: str = "",
    ) -> TokenRecord | None:
        row = await conn.fetchrow(REVOKE, at, by, reason, token_id, timeout=self.timeout)
        if row is None:
            return None
        record = record_from_row(row)
        detail = {"reason": reason} | ({"replaced_by": replaced_by} if replaced_by else {})
        entry = AuditEntry(token_id, action, by, detail, at=at)
        await conn.execute(INSERT_AUDIT, *store_sql.audit_values(entry), timeout=self.timeout)
        # Delivered at commit, to every replica listening without Redis.
        await conn.execute(
            "SELECT pg_notify($1, $2)", REVOKED_CHANNEL, record.token_hash, timeout=self.timeout
        )
        return record

    async def revoke(
        self, token_id: str, *, by: str, reason: str, at: float, action: AuditAction = "revoke"
    ) -> TokenRecord | None:
        async def work(conn: asyncpg.Connection) -> TokenRecord | None:
            return await self._revoke(conn, token_id, by, reason, at, action)

        result: TokenRecord | None = await self._transaction("revoke", work)
        return result

    async def replace(self, old_id: str, new: TokenRecord, *, by: str) -> TokenRecord | None:
        async def work(conn: asyncpg.Connection) -> TokenRecord | None:
            old = await self._revoke(
                conn, old_id, by, "regenerated", new.created_at, "regenerate", new.id
            )
            if old is None:
                return None
            await conn.execute(INSERT, *record_values(new), timeout=self.timeout)
            created = AuditEntry(new.id, "create", by, {"regenerated_from": old_id})
            await conn.execute(INSERT_AUDIT, *store_sql.audit_values(created), timeout=self.timeout)
            return old

        result: TokenRecord | None = await self._transaction("replace", work)
        return result

    async def touch(self, uses: Sequence[Use]) -> None:
        if not uses:
            return
        ids = [u.token_id for u in uses]
        ats = [u.at for u in uses]
        ips = [u.ip for u in uses]
        await self._call("touch", "execute", TOUCH, ids, ats, ips)

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        rows = await self._call("revoked_since", "fetch", _N(store_sql.REVOKED_SINCE), since)
        return [(r[0], float(r[1])) for r in rows]

    async def claim_expiring(self, now: float, horizon: float) -> list[TokenRecord]:
        rows = await self._call(
            "claim_expiring", "fetch", _N(store_sql.CLAIM_EXPIRING), now, now, horizon
        )
        return [record_from_row(r) for r in rows]

    async def unclaim_expiring(self, token_id: str) -> None:
        await self._call("unclaim_expiring", "execute", _N(store_sql.UNCLAIM_EXPIRING), token_id)

    async def note_expired(self, now: float) -> list[TokenRecord]:
        async def work(conn: asyncpg.Connection) -> list[TokenRecord]:
            rows = await conn.fetch(_N(store_sql.NOTE_EXPIRED), now, now, timeout=self.timeout)
            records = [record_from_row(r) for r in rows]
            for record in records:
                entry = AuditEntry(record.id, "expire", "system", {}, at=now)
                await conn.execute(
                    INSERT_AUDIT, *store_sql.audit_values(entry), timeout=self.timeout
                )
            return records

        result: list[TokenRecord] = await self._transaction("note_expired", work)
        return result

    async def audit(self, entry: AuditEntry) -> None:
        await self._call("audit", "execute", INSERT_AUDIT, *store_sql.audit_values(entry))

    async def history(self, token_id: str) -> list[AuditEntry]:
        rows = await self._call("history", "fetch", _N(store_sql.HISTORY), token_id)
        return [store_sql.audit_from_row(r) for r in rows]
