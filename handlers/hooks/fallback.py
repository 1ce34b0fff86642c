"""The Postgres outbox with the local spool behind it.

When the database cannot take a write, the entry goes to this process's spool file instead
of failing the hook: an event Kratos was told about is then still on disk, and the relay
drains both stores. Entries remember which store they came from, so their delivery is
recorded where they live. The trade-off, said plainly: while the database is down, the
once-per-identity guard is the Redis reservation (when configured) and the spool's own keys.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Literal

from handlers.hooks.outbox import Entry, Kind, OutboxUnavailable, PostgresOutbox, Stats
from handlers.hooks.spool import SpoolOutbox

log = logging.getLogger("kratos_hooks.hooks.outbox")
Store = Literal["primary", "spool"]


class FallbackOutbox:
    backend = "postgres"

    def __init__(self, primary: PostgresOutbox, spool: SpoolOutbox) -> None:
        self.primary = primary
        self.spool = spool
        self._origin: dict[str, Store] = {}
        # Events the database did not acknowledge, kept in the spool instead: a stalled
        # database may have taken the write all the same, and that row must be closed, not
        # published again, once the spool has delivered the event.
        self._unsure: set[str] = set()

    async def start(self) -> None:
        await self.spool.start()
        await self.primary.start()

    async def close(self) -> None:
        await self.primary.close()
        await self.spool.close()

    def _store(self, key: str) -> PostgresOutbox | SpoolOutbox:
        origin = self._origin.get(key) or (
            "spool" if key in self.spool.entries_by_key else "primary"
        )
        return self.spool if origin == "spool" else self.primary

    async def put(
        self, entry: Entry, *, reserve: bool, hold: float = 0.0, lease: float = 0.0
    ) -> bool:
        if reserve and entry.key in self.spool.entries_by_key:
            return False  # taken while the database was away
        try:
            fresh = await self.primary.put(entry, reserve=reserve, hold=hold, lease=lease)
        except OutboxUnavailable as exc:
            log.warning(
                "outbox database unavailable: entry kept in the local spool",
                extra={"error": str(exc), "kind": entry.kind},
            )
            if entry.kind == "event":
                self._unsure.add(entry.key)
        else:
            if fresh:
                self._origin[entry.key] = "primary"
            return fresh
        fresh = await self.spool.put(entry, reserve=reserve, hold=hold, lease=lease)
        if fresh:
            self._origin[entry.key] = "spool"
        return fresh

    async def claim(
        self,
        limit: int,
        lease: float,
        kinds: Sequence[Kind],
        keys: Sequence[str] | None = None,
    ) -> list[Entry]:
        await self._close_unsure()
        local = await self.spool.claim(limit, lease, kinds, keys)
        for entry in local:
            self._origin[entry.key] = "spool"
        try:
            shared = await self.primary.claim(limit - len(local), lease, kinds, keys)
        except OutboxUnavailable:
            if not local:
                raise
            shared = []
        kept = []
        for entry in shared:
            if entry.kind == "event" and entry.key in self.spool.entries_by_key:
                # The database took the hook's write after all — its answer was lost in a
                # stall — while the hook, seeing no answer, kept the event in the spool, which
                # delivers it. This copy is closed, never published a second time (it was).
                with contextlib.suppress(OutboxUnavailable):
                    await self.primary.delivered(entry.key)
                    log.info("outbox entry also kept in the local spool: closed here, not sent")
                continue
            self._origin[entry.key] = "primary"
            kept.append(entry)
        return local + kept

    async def _close_unsure(self) -> None:
        """Close the database's copy of each event the spool delivered (the relay's every
        scan: as soon as the database answers again)."""
        for key in list(self._unsure):
            kept = self.spool.entries_by_key.get(key)
            if kept is not None and kept.delivered_at is None:
                continue  # the spool's copy is still to be delivered
            if kept is not None:
                try:
                    await self.primary.delivered(key)
                except OutboxUnavailable:
                    return  # still away: the next scan tries again
            self._unsure.discard(key)

    async def delivered(self, key: str) -> None:
        await self._store(key).delivered(key)
        self._origin.pop(key, None)

    async def retry_later(self, key: str, delay: float, error: str) -> None:
        await self._store(key).retry_later(key, delay, error)

    async def release(self, key: str) -> None:
        await self._store(key).release(key)
        self._origin.pop(key, None)

    async def stats(self) -> Stats:
        local = await self.spool.stats()
        shared = await self.primary.stats()
        pending = dict(shared.pending)
        for kind, count in local.pending.items():
            pending[kind] = pending.get(kind, 0) + count
        oldest = [t for t in (local.oldest_created_at, shared.oldest_created_at) if t is not None]
        return Stats(pending, min(oldest, default=None))

    async def entries(self, *, include_delivered: bool, limit: int) -> list[Entry]:
        both = await self.spool.entries(include_delivered=include_delivered, limit=limit)
        both += await self.primary.entries(include_delivered=include_delivered, limit=limit)
        return sorted(both, key=lambda e: e.created_at)[:limit]

    async def replay(self, keys: Sequence[str] | None) -> int:
        return await self.spool.replay(keys) + await self.primary.replay(keys)

    async def purge(self, *, delivered_before: float | None, pending: bool) -> int:
        local = await self.spool.purge(delivered_before=delivered_before, pending=pending)
        return local + await self.primary.purge(delivered_before=delivered_before, pending=pending)
