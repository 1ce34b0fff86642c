"""The background task that drains the outbox.

Events are claimed only while the broker is connected and handed to ``delivery.py``, which
publishes each once and waits for its confirm; when the broker is away, or an outcome is
unknown, the whole pass backs off (tenacity, exponential with jitter, capped) and wakes early
when the publisher reconnects. Identity entries are retried one by one with their own capped
backoff (``retry_delay``), since one identity failing says nothing about the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random,
)

from handlers.hooks.delivery import Deliveries, retry_delay
from handlers.hooks.hook_metrics import METADATA_WRITES, OUTBOX_AGE, OUTBOX_DEPTH, WELCOME_EVENTS
from handlers.hooks.outbox import Entry, Kind, Outbox, OutboxUnavailable, Stats
from handlers.hooks.resolvers import ResolutionFailed
from handlers.hooks.sync import IdentitySync
from proxy.kernel.kratos_admin import AdminUnavailable, IdentityGone
from proxy.kernel.logs import fingerprint

log = logging.getLogger("kratos_hooks.hooks.relay")
KINDS: tuple[Kind, ...] = ("event", "identity")
BATCH = 10
# Outcomes that say the broker is away for every event, not just this one.
BLOCKING: dict[str | None, str] = {
    "unsent": "broker: not connected",
    "unknown": "broker: outcome unknown",
    None: "broker: no confirm yet",
}


class Blocked(Exception):
    """A dependency every entry of a kind needs is down: back off the whole pass."""


@dataclass(slots=True)
class PassResult:
    delivered: int = 0
    retried: int = 0


class Relay:
    def __init__(
        self,
        outbox: Outbox,
        deliveries: Deliveries,
        sync: IdentitySync | None,
        *,
        interval: float,
        max_backoff: float,
        retention: float,
    ) -> None:
        self.outbox = outbox
        self.deliveries = deliveries
        self.publisher = deliveries.publisher
        self.sync = sync
        self.interval = interval
        self.max_backoff = max(0.1, max_backoff)
        self.retention = retention
        self.wake = asyncio.Event()
        deliveries.on_release = self.kick
        self._last_housekeeping = 0.0
        self._blocked_by = ""  # the outage being waited out, logged once when it starts

    def kick(self) -> None:
        self.wake.set()

    async def _sleep(self, seconds: float) -> None:
        if self.publisher is not None and self.publisher.reconnected.is_set():
            self.publisher.reconnected.clear()
            return
        waiters = [asyncio.ensure_future(self.wake.wait())]
        if self.publisher is not None:
            waiters.append(asyncio.ensure_future(self.publisher.reconnected.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.wake.clear()
        if self.publisher is not None:
            self.publisher.reconnected.clear()

    async def run(self) -> None:
        while True:
            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(Blocked),
                    wait=wait_exponential(multiplier=0.2, max=self.max_backoff)
                    + wait_random(0, 0.1),
                    sleep=self._sleep,
                    stop=stop_never,
                    before_sleep=self._note_blocked,
                ):
                    with attempt:
                        await self.drain()
                        if self._blocked_by:
                            log.info("outbox relay resumed", extra={"after": self._blocked_by})
                            self._blocked_by = ""
            except Exception:
                # A bug must not end the relay for the life of the process: log, go on.
                log.exception("outbox relay pass failed")
            await self._sleep(self.interval)

    def _note_blocked(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        reason = str(exc) if exc is not None else "blocked"
        if reason != self._blocked_by:
            self._blocked_by = reason
            log.warning("outbox relay waiting for a dependency", extra={"reason": reason})

    async def drain(self) -> PassResult:
        """Claim due entries until none is left; raise ``Blocked`` on a common outage."""
        total = PassResult()
        try:
            broker_up = self.publisher is not None and self.publisher.connected
            # No events are claimed while the broker is known to be away: a claim would only
            # hide them from other replicas for the lease.
            kinds: tuple[Kind, ...] = KINDS if broker_up else ("identity",)
            while True:
                entries = await self.outbox.claim(BATCH, self.deliveries.lease, kinds)
                if not entries:
                    break
                result = await self._process(entries)
                total.delivered += result.delivered
                total.retried += result.retried
                if result.delivered == 0:
                    break
            await self._housekeeping()
            if not broker_up and (await self.outbox.stats()).pending.get("event"):
                raise Blocked("broker: not connected")
        except OutboxUnavailable as exc:
            raise Blocked(f"outbox: {exc}") from exc
        finally:
            await self.update_gauges()
        return total

    async def deliver(self, keys: Sequence[str]) -> PassResult:
        """Deliver the entries of ``keys`` now (an operator's replay), if nobody holds them."""
        try:
            kinds: tuple[Kind, ...] = KINDS
            entries = await self.outbox.claim(len(keys), self.deliveries.lease, kinds, keys)
            return await self._process(entries)
        finally:
            await self.update_gauges()

    async def _process(self, entries: list[Entry]) -> PassResult:
        result = PassResult()
        # Each event its own publish, all in flight together while the identities are synced;
        # the confirm wait bounds the pass.
        deliveries = [self.deliveries.start(e) for e in entries if e.kind == "event"]
        for entry in entries:
            if entry.kind == "event":
                continue
            if await self._sync(entry):
                await self.outbox.delivered(entry.key)
                result.delivered += 1
            else:
                result.retried += 1
        wait = self.deliveries.confirm_timeout + 1.0
        outcomes = await asyncio.gather(*(d.wait(wait) for d in deliveries))
        blocked = ""
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            # A confirmed one counts once it is recorded (a moment); the others settle behind.
            if outcome == "confirmed" and await delivery.wait_settled(wait):
                WELCOME_EVENTS.labels("relayed").inc()
                result.delivered += 1
            else:
                result.retried += 1
                blocked = BLOCKING.get(outcome, blocked)
        if blocked:
            raise Blocked(blocked)
        return result

    async def _sync(self, entry: Entry) -> bool:
        if self.sync is None:
            return False
        identity_id = str(entry.payload.get("identity_id", ""))
        try:
            result = await self.sync.run(identity_id)
        except IdentityGone:
            METADATA_WRITES.labels("relay", "identity_gone").inc()
            return True
        except (ResolutionFailed, AdminUnavailable) as exc:
            delay = retry_delay(entry.attempts, cap=self.max_backoff)
            reason = str(exc) or type(exc).__name__
            await self.outbox.retry_later(entry.key, delay, reason)
            METADATA_WRITES.labels("relay", "failed").inc()
            log.warning(
                "identity metadata still not written, retrying later",
                extra={
                    "identity": fingerprint(identity_id),
                    "reason": reason,
                    "retry_in_s": round(delay, 1),
                },
            )
            return False
        METADATA_WRITES.labels("relay", result.outcome).inc()
        return True

    async def _housekeeping(self) -> None:
        # Delivered events are the once-per-identity memory: forget them after the retention.
        now = time.time()
        if now - self._last_housekeeping < 3600:
            return
        self._last_housekeeping = now
        purged = await self.outbox.purge(delivered_before=now - self.retention, pending=False)
        if purged:
            log.info("outbox housekeeping", extra={"purged": purged})

    async def update_gauges(self) -> None:
        try:
            stats = await self.outbox.stats()
        except OutboxUnavailable:
            return
        publish_stats(stats)


def publish_stats(stats: Stats) -> None:
    for kind in KINDS:
        OUTBOX_DEPTH.labels(kind).set(stats.pending.get(kind, 0))
    oldest = stats.oldest_created_at
    OUTBOX_AGE.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
