"""The token store's contract: what is kept about a token, and the operations both back-ends
(``store_pg`` on Postgres, ``store_sqlite`` on an embedded file) implement alike — one
contract test suite runs against both.

Kept per token: its id, kind, the SHA-256 of the secret (never the secret), a hint, owner,
display name, scopes, an optional per-minute rate limit, who created it and when, expiry,
last use (time and client IP, written in batches), revocation (when, by whom, why), and the
bookkeeping of the expiry notices. Every change that matters is also one row of the
append-only audit table, written in the same transaction.

Times are epoch seconds (floats) in both back-ends, so the SQL stays one dialect and
comparisons never depend on a session time zone.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from proxy.kernel.tokens import TokenKind

AuditAction = Literal["create", "regenerate", "revoke", "expire", "leak_report"]
TABLE = "kh_tokens"
AUDIT_TABLE = "kh_token_audit"
REVOKED_CHANNEL = "kh_tokens_revoked"  # Postgres NOTIFY channel


class StoreUnavailable(Exception):
    """The store could not answer (down, timing out, not migrated): token rules fail closed."""


class NotMigrated(StoreUnavailable):
    """The database has not been brought to this release's schema (``kratos-hooks db migrate``)."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    kind: TokenKind
    token_hash: str = field(repr=False)
    hint: str
    owner: str
    name: str
    scopes: tuple[str, ...]
    created_at: float
    created_by: str
    expires_at: float | None = None
    rate_limit: int = 0  # requests per minute; 0 = none
    last_used_at: float | None = None
    last_used_ip: str | None = None
    revoked_at: float | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and not self.expired(now)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def public(self) -> dict[str, Any]:
        """Everything an owner or an operator may see (no hash)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "owner": self.owner,
            "hint": self.hint,
            "scopes": list(self.scopes),
            "rate_limit_per_minute": self.rate_limit or None,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "last_used_ip": self.last_used_ip,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
            "revoked_reason": self.revoked_reason,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    token_id: str
    action: AuditAction
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def detail_json(self) -> str:
        return orjson.dumps(self.detail).decode()


@dataclass(frozen=True, slots=True)
class Use:
    """A token's latest use, as the batched ``last_used_at`` write records it."""

    token_id: str
    at: float
    ip: str


# The columns every read selects, in this order (``record_from_row``).
COLUMNS = (
    "id",
    "kind",
    "token_hash",
    "hint",
    "owner",
    "name",
    "scopes",
    "created_at",
    "created_by",
    "expires_at",
    "rate_limit",
    "last_used_at",
    "last_used_ip",
    "revoked_at",
    "revoked_by",
    "revoked_reason",
)
SELECT = ", ".join(COLUMNS)


def _kind(value: object) -> TokenKind:
    if value == "key":
        return "key"
    return "svc" if value == "svc" else "pat"


def record_from_row(row: Sequence[Any]) -> TokenRecord:
    return TokenRecord(
        id=row[0],
        kind=_kind(row[1]),
        token_hash=row[2],
        hint=row[3],
        owner=row[4],
        name=row[5],
        scopes=tuple(s for s in str(row[6]).split(" ") if s),
        created_at=float(row[7]),
        created_by=row[8],
        expires_at=None if row[9] is None else float(row[9]),
        rate_limit=int(row[10] or 0),
        last_used_at=None if row[11] is None else float(row[11]),
        last_used_ip=row[12],
        revoked_at=None if row[13] is None else float(row[13]),
        revoked_by=row[14],
        revoked_reason=row[15],
    )


def record_values(record: TokenRecord) -> tuple[Any, ...]:
    """The row of ``record`` in ``COLUMNS`` order (scopes space-separated)."""
    return (
        record.id,
        record.kind,
        record.token_hash,
        record.hint,
        record.owner,
        record.name,
        " ".join(record.scopes),
        record.created_at,
        record.created_by,
        record.expires_at,
        record.rate_limit,
        record.last_used_at,
        record.last_used_ip,
        record.revoked_at,
        record.revoked_by,
        record.revoked_reason,
    )


class TokenStore(Protocol):
    backend: str  # "postgres" | "sqlite"

    async def open(self) -> None:
        """Connect (and, when asked, migrate); ``StoreUnavailable`` / ``NotMigrated``."""
        ...

    async def close(self) -> None: ...

    async def insert(self, record: TokenRecord, audit: AuditEntry) -> None: ...

    async def by_hash(self, token_hash: str) -> TokenRecord | None: ...

    async def by_id(self, token_id: str) -> TokenRecord | None: ...

    async def listing(
        self,
        *,
        kind: TokenKind | None = None,
        owner: str | None = None,
        revoked_since: float | None = None,
        limit: int = 500,
    ) -> list[TokenRecord]:
        """Tokens, newest first: the active ones (expired included), and those revoked at or
        after ``revoked_since`` (None: no revoked ones)."""
        ...

    async def revoke(
        self, token_id: str, *, by: str, reason: str, at: float, action: AuditAction = "revoke"
    ) -> TokenRecord | None:
        """Revoke an unrevoked token (audited, announced to Postgres listeners); the record
        as revoked, or None when there is no such token or it was revoked already."""
        ...

    async def replace(self, old_id: str, new: TokenRecord, *, by: str) -> TokenRecord | None:
        """Regenerate: ``new`` stored and the old token revoked, in one transaction; the old
        record as revoked, or None (nothing written) when it is unknown or revoked."""
        ...

    async def touch(self, uses: Sequence[Use]) -> None:
        """Record the latest use of each token (one batched write)."""
        ...

    async def revoked_since(self, since: float) -> list[tuple[str, float]]:
        """(hash, revoked_at) of the tokens revoked after ``since``."""
        ...

    async def claim_expiring(self, now: float, horizon: float) -> list[TokenRecord]:
        """Active tokens expiring before ``horizon`` that were never warned, marked warned
        in the same statement (two replicas never both warn)."""
        ...

    async def unclaim_expiring(self, token_id: str) -> None:
        """A warning that could not be sent: due again at the next pass."""
        ...

    async def note_expired(self, now: float) -> list[TokenRecord]:
        """Tokens that expired since the last pass, each audited ``expire`` once."""
        ...

    async def audit(self, entry: AuditEntry) -> None: ...

    async def history(self, token_id: str) -> list[AuditEntry]: ...
