"""Checking a token: the credentials feature's ``TokenVerifier`` (``proxy.kernel.tokens``).

    known(token)   cached answer ─ or a malformed token, or one the negative cache knows
    verify(token)  the same, then: the per-IP failure gate, Redis, the store (one look-up per
                   token however many ask at once), a PAT's owner at Kratos, the token's own
                   rate limit

Fail-closed: the store or Kratos' admin API failing is ``unavailable`` (503), never an allow,
and never cached. A malformed token (wrong prefix, length or checksum) is refused without any
look-up; a well-formed unknown one is remembered briefly and counted against its address.
Every answer is counted (``kratos_hooks_tokens_verifications_total``); nothing here logs a
token — at most its id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from handlers.credentials.credential_metrics import STORE_LATENCY, VERIFICATIONS
from handlers.credentials.last_used import LastUsed
from handlers.credentials.limits import FailureGate, TokenRates
from handlers.credentials.owners import Owners
from handlers.credentials.principal import Owner
from handlers.credentials.store import StoreUnavailable, TokenStore
from handlers.credentials.token_cache import Cached, TokenCache, entry_of
from handlers.credentials.tokens import Format, token_hash
from proxy.kernel.fast_metrics import CounterCell
from proxy.kernel.kratos_admin import AdminUnavailable
from proxy.kernel.tokens import TokenKind, TokenRefusal, TokenVerdict

log = logging.getLogger("kratos_hooks.credentials")
MALFORMED = TokenRefusal("malformed")
UNKNOWN = TokenRefusal("unknown")
UNAVAILABLE = TokenRefusal("unavailable")
TOUCH_EVERY = 1.0  # seconds: a token's use is handed to the batched writer at most this often
MAX_TOKEN = 128  # longer than any prefix + 36: refused before it is hashed


class Verifier:
    def __init__(
        self,
        fmt: Format,
        store: TokenStore,
        cache: TokenCache,
        owners: Owners,
        last_used: LastUsed,
        failures: FailureGate,
        rates: TokenRates,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.format = fmt
        self.store = store
        self.cache = cache
        self.owners = owners
        self.last_used = last_used
        self.failures = failures
        self.rates = rates
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[Cached | None]] = {}
        self._cells: dict[tuple[str, str], CounterCell] = {}
        self._valid = {kind: VERIFICATIONS.labels(kind, "valid") for kind in ("pat", "key", "svc")}

    def kind_of(self, value: str) -> TokenKind | None:
        return self.format.kind_of(value)

    def _count(self, kind: str | None, result: str) -> None:
        key = (kind or "unknown", result)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = VERIFICATIONS.labels(*key)
        cell.count += 1

    def _answer(self, entry: Cached, client_ip: Callable[[], str], now: float) -> TokenVerdict:
        if entry.refusal is not None:
            self._count(None, entry.refusal.reason)
            return entry.refusal
        principal = entry.principal
        assert principal is not None
        if now - entry.touched >= TOUCH_EVERY:
            entry.touched = now
            self.last_used.record(principal.token_id, now, client_ip())
        self._valid[principal.kind].count += 1
        return principal

    def _before_lookup(self, token: str, token_hash_: str) -> TokenRefusal | None:
        """What is refused before anything is asked: malformed, or known to be unknown."""
        if not self.format.well_formed(token):
            self._count(self.format.kind_of(token), "malformed")
            return MALFORMED
        if token_hash_ in self.cache.negative:
            self._count(self.format.kind_of(token), "unknown")
            return UNKNOWN
        return None

    def known(self, token: str, client_ip: Callable[[], str]) -> TokenVerdict | None:
        if len(token) > MAX_TOKEN:
            self._count(None, "malformed")
            return MALFORMED
        hashed = token_hash(token)
        now = self._clock()
        entry = self.cache.get(hashed, now)
        if entry is None:
            return self._before_lookup(token, hashed)
        if entry.rate_limit and entry.principal is not None:
            return None  # its counter lives in Redis: ``verify`` counts it
        return self._answer(entry, client_ip, now)

    async def verify(self, token: str, client_ip: str) -> TokenVerdict:
        if len(token) > MAX_TOKEN:
            self._count(None, "malformed")
            return MALFORMED
        hashed = token_hash(token)
        entry = self.cache.get(hashed)
        if entry is None:
            refused = self._before_lookup(token, hashed)
            if refused is not None:
                return refused
            kind = self.format.kind_of(token)
            wait = self.failures.closed_for(client_ip)
            if wait:
                self._count(kind, "rate_limited")
                return TokenRefusal("rate_limited", wait)
            try:
                entry = await self._lookup(hashed)
            except (StoreUnavailable, AdminUnavailable) as exc:
                self._count(kind, "unavailable")
                log.warning("token check failed closed", extra={"error": str(exc)})
                return UNAVAILABLE
            if entry is None:
                self._count(kind, "unknown")
                await self.failures.failed(client_ip)
                return UNKNOWN
        if entry.rate_limit and entry.principal is not None:
            wait = await self.rates.hit(entry.principal.token_id, entry.rate_limit)
            if wait:
                self._count(entry.principal.kind, "rate_limited")
                return TokenRefusal("rate_limited", wait)
        return self._answer(entry, lambda: client_ip, self._clock())

    async def _lookup(self, hashed: str) -> Cached | None:
        task = self._inflight.get(hashed)
        if task is None:
            task = asyncio.create_task(self._load(hashed))
            self._inflight[hashed] = task
            task.add_done_callback(lambda _: self._inflight.pop(hashed, None))
        # Shielded: one caller giving up must not cancel the look-up the others wait for.
        return await asyncio.shield(task)

    async def _load(self, hashed: str) -> Cached | None:
        entry = await self.cache.get_shared(hashed)
        if entry is not None:
            self.cache.put(hashed, entry)
            return entry
        started = time.perf_counter()
        record = await self.store.by_hash(hashed)
        STORE_LATENCY.observe(time.perf_counter() - started)
        if record is None:
            self.cache.negative.add(hashed)
            return None
        now = self._clock()
        owner: Owner | None = None
        if record.kind == "pat" and record.active(now):
            owner = await self.owners.check(record.owner)
        entry = entry_of(record, owner, self.cache.catalogue, now, self.cache.ttl)
        kept = self.cache.put(hashed, entry)  # a revocation that landed meanwhile wins
        if kept is entry:
            await self.cache.put_shared(hashed, entry)
        return kept
