"""The durable outbox: work Kratos was already told "done" about, kept until it is done.

Two kinds of entries: ``event`` (a message to publish; its key is also the once-per-identity
reservation, so a delivered entry is kept for the retention period) and ``identity`` (an
identity whose metadata could not be written in time; retried by the relay).

Backends: a Postgres table when ``DATABASE_URL`` is set (shared by every replica), otherwise
the fsync'd spool file of ``spool.py`` (the embedded default, one process). With a database,
the spool still stands behind it for writes the database cannot take (``fallback.py``).

Claims are leases: an entry being worked on carries ``claimed_by`` (this process) and
``claimed_until``, and nobody else claims it before that time. The hook claims the entry it
records in the same INSERT; the relay claims due entries with ``FOR UPDATE SKIP LOCKED``, so two
replicas scanning at once never take the same row. A lease rather than a row lock held in an
open transaction: a publish may wait for its confirm for HOOKS_CONFIRM_TIMEOUT, too long to hold
a pooled connection per entry, and a lease outlives a database blip without letting a second
replica in. A replica that dies holding leases loses them when they expire (HOOKS_OUTBOX_LEASE,
longer than any confirm wait); the next claimer counts and logs the takeover. Only the holder
(or nobody) may release an entry for a retry; a confirmed delivery is recorded whoever holds it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import asyncpg
import orjson

from handlers.hooks.hook_metrics import LEASE_TAKEOVERS, OUTBOX_ERRORS
from proxy.kernel.logs import fingerprint
from proxy.kernel.pg import bounded, create_pool

log = logging.getLogger("kratos_hooks.hooks.outbox")
Kind = Literal["event", "identity"]
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class OutboxUnavailable(Exception):
    """The outbox could not durably record or read an entry."""


@dataclass(slots=True)
class Entry:
    key: str
    kind: Kind
    payload: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str = ""
    delivered_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "payload": self.payload,
            "created_at": self.created_at,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            key=str(data["key"]),
            kind="identity" if data.get("kind") == "identity" else "event",
            payload=dict(data.get("payload") or {}),
            created_at=float(data.get("created_at") or 0.0),
            attempts=int(data.get("attempts") or 0),
            next_attempt_at=float(data.get("next_attempt_at") or 0.0),
            last_error=str(data.get("last_error") or ""),
            delivered_at=None if data.get("delivered_at") is None else float(data["delivered_at"]),
        )


@dataclass(frozen=True, slots=True)
class Stats:
    pending: dict[str, int]
    oldest_created_at: float | None

    @property
    def total(self) -> int:
        return sum(self.pending.values())


class Outbox(Protocol):
    backend: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put(
        self, entry: Entry, *, reserve: bool, hold: float = 0.0, lease: float = 0.0
    ) -> bool:
        """Record ``entry``, due after ``hold`` seconds; with ``lease``, claimed by this process
        for that long (as ``claim`` would). With ``reserve`` nothing is written when the key
        is already known (pending or delivered) and False is returned; without, a known key
        is re-armed."""
        ...

    async def claim(
        self,
        limit: int,
        lease: float,
        kinds: Sequence[Kind],
        keys: Sequence[str] | None = None,
    ) -> list[Entry]:
        """Due, unclaimed entries of ``kinds`` (and ``keys``, when given), claimed by this
        process for ``lease`` seconds."""
        ...

    async def delivered(self, key: str) -> None:
        """Record the entry as done (and its claim as ended), whoever holds the claim."""
        ...

    async def retry_later(self, key: str, delay: float, error: str) -> None:
        """End this process' claim: the entry is due again after ``delay`` seconds. A no-op
        when another process holds the claim (it took over an expired one)."""
        ...

    async def release(self, key: str) -> None:
        """Forget a pending entry (a reservation given back)."""
        ...

    async def stats(self) -> Stats: ...

    async def entries(self, *, include_delivered: bool, limit: int) -> list[Entry]: ...

    async def replay(self, keys: Sequence[str] | None) -> int:
        """Make pending entries (all, or ``keys``) due now; returns how many."""
        ...

    async def purge(self, *, delivered_before: float | None, pending: bool) -> int:
        """Delete delivered entries older than ``delivered_before`` (epoch) and, with
        ``pending``, every undelivered one; returns how many."""
        ...


def quote_table(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"HOOKS_OUTBOX_TABLE={name!r}: expected a plain SQL identifier")
    return f'"{name}"'


_COLUMNS = (
    "key",
    "kind",
    "payload::text",
    "created_at",
    "attempts",
    "next_attempt_at",
    "last_error",
    "delivered_at",
)
_SELECT = ", ".join(_COLUMNS)


def identity_tag(key: str) -> str:
    """The log tag of the identity an entry key names (``event:PATTERN:ID``,
    ``identity:ID``): the same fingerprint the hooks log, never the raw id."""
    return fingerprint(key.rsplit(":", 1)[-1])


def owner_id() -> str:
    """This process as a claim holder: readable in the table (host, pid), and unique even
    when a restarted container gets the same pid again."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _row_entry(row: asyncpg.Record) -> Entry:
    return Entry(
        key=row[0],
        kind="identity" if row[1] == "identity" else "event",
        payload=orjson.loads(row[2]),
        created_at=_epoch(row[3]) or 0.0,
        attempts=row[4],
        next_attempt_at=_epoch(row[5]) or 0.0,
        last_error=row[6],
        delivered_at=_epoch(row[7]),
    )


class PostgresOutbox:
    backend = "postgres"

    def __init__(
        self, dsn: str, table: str, *, timeout: float = 2.0, owner: str | None = None
    ) -> None:
        self.dsn = dsn
        self.t = quote_table(table)
        self.index = quote_table(f"{table}_due")
        self.timeout = timeout
        self.owner = owner or owner_id()
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        # The series exists from the start at 0: a dashboard shows "none", not "no data".
        LEASE_TAKEOVERS.labels(self.backend)

    async def start(self) -> None:
        try:
            await self._get_pool()
        except OutboxUnavailable:
            pass  # made on first use; the service starts while the database is down

    async def _get_pool(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                failures = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
                try:
                    pool = await create_pool(self.dsn, timeout=self.timeout)
                except failures as exc:
                    OUTBOX_ERRORS.labels(self.backend).inc()
                    raise OutboxUnavailable(type(exc).__name__) from exc
                try:
                    async with pool.acquire(timeout=self.timeout) as conn:
                        # Serialised: replicas starting together must not race on the DDL.
                        async with conn.transaction():
                            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.t)
                            await conn.execute(self._ddl())
                except failures as exc:
                    OUTBOX_ERRORS.labels(self.backend).inc()
                    await pool.close()
                    raise OutboxUnavailable(type(exc).__name__) from exc
                self._pool = pool
            return self._pool

    def _ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.t} (
                key text PRIMARY KEY,
                kind text NOT NULL,
                payload jsonb NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                attempts integer NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL DEFAULT now(),
                last_error text NOT NULL DEFAULT '',
                delivered_at timestamptz
            );
            ALTER TABLE {self.t} ADD COLUMN IF NOT EXISTS claimed_by text;
            ALTER TABLE {self.t} ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
            CREATE INDEX IF NOT EXISTS {self.index} ON {self.t} (next_attempt_at)
                WHERE delivered_at IS NULL;
        """

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        pool = await self._get_pool()
        try:
            return await bounded(pool, method, sql, *args, timeout=self.timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            OUTBOX_ERRORS.labels(self.backend).inc()
            raise OutboxUnavailable(type(exc).__name__) from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def put(
        self, entry: Entry, *, reserve: bool, hold: float = 0.0, lease: float = 0.0
    ) -> bool:
        # A re-armed key keeps its claim: whoever works on it finishes, then sees it due.
        on_conflict = (
            "DO NOTHING"
            if reserve
            else "DO UPDATE SET payload = EXCLUDED.payload, attempts = 0, delivered_at = NULL,"
            " next_attempt_at = EXCLUDED.next_attempt_at, last_error = ''"
        )
        sql = (
            f"INSERT INTO {self.t}"
            f" (key, kind, payload, next_attempt_at, claimed_by, claimed_until)"
            f" VALUES ($1, $2, $3::jsonb, now() + make_interval(secs => $4), $5::text,"
            f" CASE WHEN $5::text IS NULL THEN NULL"
            f" ELSE now() + make_interval(secs => $6::float8) END)"
            f" ON CONFLICT (key) {on_conflict} RETURNING key"
        )
        payload = orjson.dumps(entry.payload).decode()
        holder = self.owner if lease > 0 else None
        fresh = await self._run(
            "fetchval", sql, entry.key, entry.kind, payload, hold, holder, lease
        )
        return fresh is not None

    async def claim(
        self,
        limit: int,
        lease: float,
        kinds: Sequence[Kind],
        keys: Sequence[str] | None = None,
    ) -> list[Entry]:
        # SKIP LOCKED: a concurrent claimer passes over the rows this one is taking instead of
        # waiting for them, then finds them leased. ``due.claimed_by`` is the previous holder.
        only = "" if keys is None else " AND key = ANY($5::text[])"
        returned = ", ".join(f"o.{c}" for c in _COLUMNS)
        sql = (
            f"WITH due AS (SELECT key, claimed_by FROM {self.t}"
            f" WHERE delivered_at IS NULL AND next_attempt_at <= now()"
            f" AND (claimed_until IS NULL OR claimed_until <= now())"
            f" AND kind = ANY($3::text[]){only}"
            f" ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
            f" UPDATE {self.t} AS o SET claimed_by = $4,"
            f" claimed_until = now() + make_interval(secs => $2)"
            f" FROM due WHERE o.key = due.key RETURNING {returned}, due.claimed_by"
        )
        args: list[Any] = [limit, lease, list(kinds), self.owner]
        if keys is not None:
            args.append(list(keys))
        rows = await self._run("fetch", sql, *args)
        for row in rows:
            previous = row[len(_COLUMNS)]
            if previous is not None and previous != self.owner:
                LEASE_TAKEOVERS.labels(self.backend).inc()
                log.warning(
                    "outbox entry taken over: the process that claimed it never finished",
                    extra={
                        "previous_owner": previous,
                        "identity": identity_tag(row[0]),
                        "kind": row[1],
                    },
                )
        return sorted((_row_entry(r) for r in rows), key=lambda e: e.created_at)

    async def delivered(self, key: str) -> None:
        # Only the key is still needed (the once-per-identity memory): drop the payload.
        sql = (
            f"UPDATE {self.t} SET delivered_at = now(), last_error = '', payload = '{{}}'::jsonb,"
            f" claimed_by = NULL, claimed_until = NULL WHERE key = $1"
        )
        await self._run("execute", sql, key)

    async def retry_later(self, key: str, delay: float, error: str) -> None:
        sql = (
            f"UPDATE {self.t} SET attempts = attempts + 1, last_error = $3,"
            f" next_attempt_at = now() + make_interval(secs => $2),"
            f" claimed_by = NULL, claimed_until = NULL"
            f" WHERE key = $1 AND delivered_at IS NULL"
            f" AND (claimed_by IS NULL OR claimed_by = $4)"
        )
        await self._run("execute", sql, key, delay, error[:500], self.owner)

    async def release(self, key: str) -> None:
        sql = f"DELETE FROM {self.t} WHERE key = $1 AND delivered_at IS NULL"
        await self._run("execute", sql, key)

    async def stats(self) -> Stats:
        sql = (
            f"SELECT kind, count(*), min(created_at) FROM {self.t}"
            f" WHERE delivered_at IS NULL GROUP BY kind"
        )
        rows = await self._run("fetch", sql)
        oldest = [_epoch(r[2]) for r in rows]
        return Stats(
            pending={r[0]: int(r[1]) for r in rows},
            oldest_created_at=min((o for o in oldest if o is not None), default=None),
        )

    async def entries(self, *, include_delivered: bool, limit: int) -> list[Entry]:
        where = "" if include_delivered else "WHERE delivered_at IS NULL"
        sql = f"SELECT {_SELECT} FROM {self.t} {where} ORDER BY created_at LIMIT $1"
        return [_row_entry(r) for r in await self._run("fetch", sql, limit)]

    async def replay(self, keys: Sequence[str] | None) -> int:
        sql = f"UPDATE {self.t} SET next_attempt_at = now() WHERE delivered_at IS NULL"
        if keys is None:
            status = await self._run("execute", sql)
        else:
            status = await self._run("execute", sql + " AND key = ANY($1::text[])", list(keys))
        return int(str(status).rsplit(" ", 1)[-1])

    async def purge(self, *, delivered_before: float | None, pending: bool) -> int:
        clauses = []
        args: list[Any] = []
        if delivered_before is not None:
            args.append(delivered_before)
            clauses.append(
                f"(delivered_at IS NOT NULL AND delivered_at < to_timestamp(${len(args)}))"
            )
        if pending:
            clauses.append("delivered_at IS NULL")
        if not clauses:
            return 0
        status = await self._run(
            "execute", f"DELETE FROM {self.t} WHERE " + " OR ".join(clauses), *args
        )
        return int(str(status).rsplit(" ", 1)[-1])
