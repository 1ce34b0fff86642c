"""What is known about a token without asking the store: an LRU in this process, Redis across
replicas, and a bounded negative cache — all keyed by the token's SHA-256, never the token.

    verify ─► local LRU ─► negative LRU ─► Redis ─► store (+ Kratos admin for a PAT's owner)

- A valid token is trusted for min(``TOKENS_CACHE_TTL``, its own expiry); a revoked, expired
  or orphaned one (its owner inactive) is remembered as refused for the TTL.
- A well-formed token the store does not know is remembered in the negative cache, which is
  bounded (least recently used out), so a flood of random tokens costs memory it cannot grow.
- A revocation (``revoke``) replaces the entry here with a "revoked" marker and overwrites the
  shared one in Redis; stores into Redis use ``SET NX`` so a look-up that was in flight
  cannot write a revoked token back. Other replicas hear of it through ``revocation.py``.
- Redis failing → the Redis layer is skipped for a few seconds; the store is asked directly.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from handlers.credentials.credential_metrics import CACHE, REDIS_ERRORS
from handlers.credentials.principal import Owner, Principal, principal_of
from handlers.credentials.scopes import Catalogue
from handlers.credentials.store import TokenRecord
from proxy.kernel.redis import RedisClient, RedisUnavailable, redis_call
from proxy.kernel.tokens import RefusalReason, TokenKind, TokenRefusal

log = logging.getLogger("kratos_hooks.credentials")
REDIS_PAUSE = 5.0
LOCAL_HIT = CACHE.labels("local", "hit")
LOCAL_MISS = CACHE.labels("local", "miss")
NEGATIVE_HIT = CACHE.labels("negative", "hit")
CACHED_REFUSALS: tuple[RefusalReason, ...] = ("revoked", "expired", "owner_inactive")


@dataclass(slots=True)
class Cached:
    """One token's answer: a principal, or a lasting refusal."""

    principal: Principal | None
    refusal: TokenRefusal | None
    expires: float  # epoch seconds: min(now + TTL, the token's own expiry)
    rate_limit: int = 0
    touched: float = 0.0  # when its last use was last handed to the batched writer
    # The shared form, for Redis (what another replica needs to rebuild the answer).
    shared: dict[str, Any] | None = None


def token_key(prefix: str, token_hash: str) -> str:
    return f"{prefix}tokens:v:{token_hash}"


def revoked_channel(prefix: str) -> str:
    return f"{prefix}tokens:revoked"


def entry_of(
    record: TokenRecord, owner: Owner | None, catalogue: Catalogue, now: float, ttl: float
) -> Cached:
    """The cache entry for a record just read from the store (pure)."""
    until = now + ttl
    shared: dict[str, Any] = {
        "id": record.id,
        "k": record.kind,
        "o": record.owner,
        "s": list(record.scopes),
        "rl": record.rate_limit,
    }
    if record.revoked_at is not None:
        return Cached(None, TokenRefusal("revoked"), until, shared=shared | {"st": "revoked"})
    if record.expired(now):
        return Cached(None, TokenRefusal("expired"), until, shared=shared | {"st": "expired"})
    if record.expires_at is not None:
        until = min(until, record.expires_at)
        shared["x"] = record.expires_at
    if owner is not None and owner.state != "active":
        refusal = TokenRefusal("owner_inactive")
        return Cached(None, refusal, until, shared=shared | {"st": "owner_inactive"})
    if owner is not None:
        shared["r"] = list(owner.roles)
    principal = principal_of(record, owner, catalogue)
    return Cached(principal, None, until, record.rate_limit, shared=shared | {"st": "valid"})


def encode(entry: Cached) -> bytes:
    return orjson.dumps((entry.shared or {}) | {"e": entry.expires})


def decode(raw: bytes, catalogue: Catalogue) -> Cached | None:
    """An entry another replica shared; None when it does not parse (then ask the store)."""
    try:
        doc = orjson.loads(raw)
        state = doc["st"]
        expires = float(doc["e"])
        if state in CACHED_REFUSALS:
            return Cached(None, TokenRefusal(state), expires)
        if state != "valid":
            return None
        kind: TokenKind = doc["k"] if doc["k"] in ("pat", "key", "svc") else "pat"
        record = TokenRecord(
            id=str(doc["id"]),
            kind=kind,
            token_hash="",
            hint="",
            owner=str(doc["o"]),
            name="",
            scopes=tuple(str(s) for s in doc["s"]),
            created_at=0.0,
            created_by="",
            expires_at=doc.get("x"),
            rate_limit=int(doc.get("rl") or 0),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    owner = Owner("active", tuple(str(r) for r in doc.get("r", ()))) if kind == "pat" else None
    principal = principal_of(record, owner, catalogue)
    return Cached(principal, None, expires, record.rate_limit, shared=doc)


class NegativeCache:
    """Hashes the store does not know, remembered briefly and boundedly."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._size = max(1, size)
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, token_hash: str) -> bool:
        until = self._entries.get(token_hash)
        if until is None:
            return False
        if until <= self._clock():
            del self._entries[token_hash]
            return False
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, token_hash: str) -> None:
        self._entries[token_hash] = self._clock() + self._ttl
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def discard(self, token_hash: str) -> None:
        self._entries.pop(token_hash, None)


class TokenCache:
    def __init__(
        self,
        redis: RedisClient | None,
        *,
        prefix: str,
        ttl: float,
        size: int,
        negative_ttl: float,
        negative_size: int,
        catalogue: Catalogue,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self._size = max(1, size)
        self._clock = clock
        self.catalogue = catalogue
        self.negative = NegativeCache(negative_size, negative_ttl, clock)
        self._local: OrderedDict[str, Cached] = OrderedDict()
        self._redis_paused_until = 0.0

    def __len__(self) -> int:
        return len(self._local)

    # --- in process ------------------------------------------------------------------------
    def get(self, token_hash: str, now: float | None = None) -> Cached | None:
        entry = self._local.get(token_hash)
        if entry is None:
            LOCAL_MISS.count += 1
            return None
        if entry.expires <= (self._clock() if now is None else now):
            del self._local[token_hash]
            LOCAL_MISS.count += 1
            return None
        self._local.move_to_end(token_hash)
        LOCAL_HIT.count += 1
        return entry

    def put(self, token_hash: str, entry: Cached) -> Cached:
        """Keep ``entry``; the entry now in force (a revocation already here wins)."""
        current = self._local.get(token_hash)
        if current is not None and current.refusal is not None and entry.refusal is None:
            if current.refusal.reason == "revoked" and current.expires > self._clock():
                return current  # revoked meanwhile: a look-up that began earlier cannot undo it
        self._local[token_hash] = entry
        self._local.move_to_end(token_hash)
        while len(self._local) > self._size:
            self._local.popitem(last=False)
        return entry

    def mark_revoked(self, token_hash: str) -> None:
        """This process's answer for ``token_hash`` becomes "revoked" for the TTL."""
        self.put(token_hash, Cached(None, TokenRefusal("revoked"), self._clock() + self.ttl))
        self.negative.discard(token_hash)

    def flush(self) -> None:
        """Forget every entry (revocations may have been missed while a listener was away)."""
        self._local.clear()

    # --- Redis -----------------------------------------------------------------------------
    def _client(self) -> RedisClient | None:
        if self.redis is None or time.monotonic() < self._redis_paused_until:
            return None
        return self.redis

    def _failed(self, exc: BaseException) -> None:
        REDIS_ERRORS.inc()
        self._redis_paused_until = time.monotonic() + REDIS_PAUSE
        log.warning(
            "redis unavailable for the token cache; asking the store directly",
            extra={"error": str(exc), "pause_s": REDIS_PAUSE},
        )

    async def get_shared(self, token_hash: str) -> Cached | None:
        client = self._client()
        if client is None:
            return None
        try:
            raw = await redis_call(client.get(token_key(self.prefix, token_hash)))
        except RedisUnavailable as exc:
            self._failed(exc)
            return None
        entry = decode(raw, self.catalogue) if raw else None
        if entry is not None and entry.expires <= self._clock():
            entry = None
        CACHE.labels("redis", "hit" if entry else "miss").count += 1
        return entry

    async def put_shared(self, token_hash: str, entry: Cached) -> None:
        client = self._client()
        ttl_ms = int((entry.expires - self._clock()) * 1000)
        if client is None or ttl_ms <= 0 or entry.shared is None:
            return
        try:
            await redis_call(
                client.set(token_key(self.prefix, token_hash), encode(entry), px=ttl_ms, nx=True)
            )
        except RedisUnavailable as exc:
            self._failed(exc)

    def revoked_entry(self) -> Cached:
        until = self._clock() + self.ttl
        return Cached(None, TokenRefusal("revoked"), until, shared={"st": "revoked"})
