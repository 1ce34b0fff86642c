"""The store's statements, written once with ``?`` placeholders (SQLite's) and numbered for
asyncpg by ``numbered`` — the two back-ends run the same SQL but for the batched
``last_used_at`` write, which each does its own fastest way."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from handlers.credentials.store import AUDIT_TABLE, COLUMNS, SELECT, TABLE, AuditEntry

_PLACEHOLDER = re.compile(r"\?")


def numbered(sql: str) -> str:
    """``?`` → ``$1``, ``$2`` … (the statements here carry no ``?`` in literals)."""
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


INSERT = f"INSERT INTO {TABLE} ({SELECT}) VALUES ({', '.join('?' * len(COLUMNS))})"
INSERT_AUDIT = (
    f"INSERT INTO {AUDIT_TABLE} (id, token_id, action, actor, at, detail) VALUES (?, ?, ?, ?, ?, ?)"
)
BY_HASH = f"SELECT {SELECT} FROM {TABLE} WHERE token_hash = ?"
BY_ID = f"SELECT {SELECT} FROM {TABLE} WHERE id = ?"
REVOKE = (
    f"UPDATE {TABLE} SET revoked_at = ?, revoked_by = ?, revoked_reason = ?"
    f" WHERE id = ? AND revoked_at IS NULL RETURNING {SELECT}"
)
REVOKED_SINCE = (
    f"SELECT token_hash, revoked_at FROM {TABLE} WHERE revoked_at > ? ORDER BY revoked_at"
)
CLAIM_EXPIRING = (
    f"UPDATE {TABLE} SET expiry_warned_at = ?"
    f" WHERE revoked_at IS NULL AND expiry_warned_at IS NULL AND expires_at IS NOT NULL"
    f" AND expires_at > ? AND expires_at <= ? RETURNING {SELECT}"
)
UNCLAIM_EXPIRING = f"UPDATE {TABLE} SET expiry_warned_at = NULL WHERE id = ?"
NOTE_EXPIRED = (
    f"UPDATE {TABLE} SET expired_noted_at = ?"
    f" WHERE revoked_at IS NULL AND expired_noted_at IS NULL AND expires_at IS NOT NULL"
    f" AND expires_at <= ? RETURNING {SELECT}"
)
TOUCH = (
    f"UPDATE {TABLE} SET last_used_at = ?, last_used_ip = ?"
    f" WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)"
)
HISTORY = (
    f"SELECT id, token_id, action, actor, at, detail FROM {AUDIT_TABLE}"
    f" WHERE token_id = ? ORDER BY at, id"
)
APPLIED_MIGRATIONS = "SELECT migration_id FROM _yoyo_migration"


def listing(
    kind: str | None, owner: str | None, revoked_since: float | None, limit: int
) -> tuple[str, list[Any]]:
    """The listing query and its arguments (pure)."""
    clauses: list[str] = []
    args: list[Any] = []
    if revoked_since is None:
        clauses.append("revoked_at IS NULL")
    else:
        clauses.append("(revoked_at IS NULL OR revoked_at >= ?)")
        args.append(revoked_since)
    if kind is not None:
        clauses.append("kind = ?")
        args.append(kind)
    if owner is not None:
        clauses.append("owner = ?")
        args.append(owner)
    args.append(limit)
    where = " AND ".join(clauses)
    return f"SELECT {SELECT} FROM {TABLE} WHERE {where} ORDER BY created_at DESC LIMIT ?", args


def audit_values(entry: AuditEntry) -> tuple[Any, ...]:
    return (entry.id, entry.token_id, entry.action, entry.actor, entry.at, entry.detail_json())


def audit_from_row(row: Sequence[Any]) -> AuditEntry:
    detail = orjson.loads(row[5]) if row[5] else {}
    return AuditEntry(
        token_id=row[1],
        action=row[2],
        actor=row[3],
        detail=detail if isinstance(detail, dict) else {},
        at=float(row[4]),
        id=row[0],
    )
