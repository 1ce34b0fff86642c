"""``last_used_at`` without a write per request: uses are remembered here and written in
batches — each token at most once per ``TOKENS_LAST_USED_INTERVAL`` (a minute), all due tokens
in one statement — and whatever is pending is written at shutdown.

A failed write keeps the uses pending for the next flush (a newer use replaces an older one;
the store never moves ``last_used_at`` backwards). Memory is one entry per token used since
its last write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from handlers.credentials.credential_metrics import LAST_USED_PENDING
from handlers.credentials.store import StoreUnavailable, TokenStore, Use

log = logging.getLogger("kratos_hooks.credentials")
FLUSH_EVERY = 5.0  # seconds between checks for due tokens


class LastUsed:
    def __init__(
        self, store: TokenStore, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self.interval = interval
        self._clock = clock
        self._pending: dict[str, Use] = {}
        self._written: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def record(self, token_id: str, at: float, ip: str) -> None:
        self._pending[token_id] = Use(token_id, at, ip)

    def latest(self, token_id: str) -> Use | None:
        """A use not written yet (the page shows it: the store lags up to the interval)."""
        return self._pending.get(token_id)

    def due(self, now: float, *, everything: bool = False) -> list[Use]:
        """The pending uses whose token was not written within the interval (pure-ish)."""
        return [
            use
            for token_id, use in self._pending.items()
            if everything or now - self._written.get(token_id, 0.0) >= self.interval
        ]

    async def flush(self, *, everything: bool = False) -> int:
        """Write what is due (everything, at shutdown); how many tokens were written."""
        now = self._clock()
        batch = self.due(now, everything=everything)
        if not batch:
            return 0
        try:
            await self._store.touch(batch)
        except StoreUnavailable as exc:
            log.warning("last_used_at not written yet", extra={"error": str(exc)})
            return 0
        for use in batch:
            if self._pending.get(use.token_id) is use:
                del self._pending[use.token_id]
            self._written[use.token_id] = now
        if len(self._written) > 100_000:  # older than the interval: nothing to hold back
            self._written = {k: v for k, v in self._written.items() if now - v < self.interval}
        LAST_USED_PENDING.set(len(self._pending))
        return len(batch)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(FLUSH_EVERY, self.interval))
            await self.flush()
