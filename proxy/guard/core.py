"""The guard's store access: judging an attempt, settling it, and what happens when the
store cannot answer.

One ``Guard`` per process and configuration (built by the composition root's ``Shared``) is
used by the public listener (the proxy), the internal one (the compatibility endpoints) and
the CLI. Redis failures are translated here, in one place: fail-open onto the bounded
in-process limiter (default) or fail-closed (``DependencyUnavailable``, 503). Which keys an
attempt touches is ``naming``; where a blocked browser goes is ``ui_urls``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config.settings import Settings
from proxy.guard.guard_metrics import ATTEMPTS, BLOCKS, RESETS, STORE_ERRORS, WAITS
from proxy.guard.identity import Keyer
from proxy.guard.naming import BucketNames, HashedSubject
from proxy.guard.policy import Bucket, Outcome, Policies, Verdict
from proxy.guard.store import (
    BucketReport,
    FlowHold,
    MemoryStore,
    RateWindow,
    Store,
    StoreUnavailable,
)
from proxy.guard.ui_urls import UiUrls
from proxy.kernel import request_ids
from proxy.kernel.errors import DependencyUnavailable
from proxy.kernel.tasks import BackgroundTasks

log = logging.getLogger("kratos_hooks.guard")

# A store outage is logged at most this often; the metric counts every failure.
WARN_EVERY = 10.0


@dataclass(slots=True)
class Attempt:
    buckets: tuple[Bucket, ...]
    token: str
    store: Store
    subject: HashedSubject
    settled: bool = False


class Guard:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        fallback: MemoryStore,
        keyer: Keyer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = settings.backoff
        self.names = BucketNames(keyer, Policies.from_settings(settings.backoff))
        self.ui = UiUrls(self.config.ui_urls())
        self.store = store
        self.fallback = fallback
        self.clock = clock
        self.failure_ids = frozenset(int(i) for i in self.config.failure_message_ids)
        self._warned_at = -math.inf
        self._settling = BackgroundTasks(log, "settling a login attempt")

    @property
    def keyer(self) -> Keyer:
        return self.names.keyer

    def rate_window(self, flow: str, address: str, limit: int) -> RateWindow | None:
        """The plain window of ``flow`` submissions from the hashed ``address``, now."""
        return self.names.rate_window(
            flow, address, limit, now=self.clock(), window=self.config.rate_window
        )

    # --- store access with the degraded modes ------------------------------------------
    def _store_failed(self, operation: str, exc: StoreUnavailable, mode: str) -> None:
        """Count every failure; log the outage at most every ``WARN_EVERY`` seconds."""
        STORE_ERRORS.labels(operation).inc()
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "backoff store unavailable",
                extra={"operation": operation, "error": str(exc), "mode": mode},
            )

    def _degraded(self, operation: str, exc: StoreUnavailable) -> MemoryStore:
        mode = "fail-closed" if self.config.fail_closed else "in-process limiter"
        self._store_failed(operation, exc, mode)
        if self.config.fail_closed:
            raise DependencyUnavailable(
                "Sign-in is temporarily unavailable, please try again in a minute.",
                headers={"Retry-After": "30"},
            ) from exc
        return self.fallback

    async def begin(
        self, subject: HashedSubject, *, count: bool = False, rate: RateWindow | None = None
    ) -> tuple[Verdict, Attempt]:
        """Judge the attempt and, when allowed, hold its place until ``finish``."""
        attempt = Attempt(self.names.buckets(subject), request_ids.fresh(), self.store, subject)
        now, lease = self.clock(), self.config.reservation_ttl
        try:
            verdict = await self.store.reserve(
                attempt.buckets, attempt.token, now, lease, count=count, rate=rate
            )
        except StoreUnavailable as exc:
            attempt.store = self._degraded("reserve", exc)
            verdict = await attempt.store.reserve(
                attempt.buckets, attempt.token, now, lease, count=count, rate=rate
            )
        attempt.settled = count or not verdict.allowed
        if not verdict.allowed:
            self.blocked(verdict, subject)
        return verdict, attempt

    async def finish(self, attempt: Attempt, outcome: Outcome) -> None:
        if attempt.settled:
            return
        attempt.settled = True
        await self._settle(attempt, outcome)

    def finish_soon(self, attempt: Attempt, outcome: Outcome) -> None:
        """``finish`` in the background, once the answer is on its way: the caller's
        connection takes its next request at once instead of after this round trip (proxies
        reuse the connection that answered last). Meanwhile the attempt stays in flight,
        which judges a retry exactly as the settled failure would — nothing slips through."""
        if attempt.settled:
            return
        attempt.settled = True
        self._settling.start(self._settle(attempt, outcome), name="settle-attempt")

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for attempts still settling (at shutdown, before the store closes)."""
        await self._settling.drain(timeout)

    async def _settle(self, attempt: Attempt, outcome: Outcome) -> None:
        ATTEMPTS.labels(outcome.value).inc()
        now = self.clock()
        try:
            await attempt.store.settle(attempt.buckets, attempt.token, outcome, now)
        except StoreUnavailable as exc:
            self._store_failed("settle", exc, "in-process limiter")
            await self.fallback.settle(attempt.buckets, attempt.token, outcome, now)
        if outcome is Outcome.SUCCESS:
            RESETS.labels("login").inc()
            log.info(
                "login backoff reset", extra={"subject": attempt.subject.tag, "cause": "login"}
            )

    def blocked(self, verdict: Verdict, subject: HashedSubject) -> None:
        ATTEMPTS.labels("blocked").inc()
        BLOCKS.labels(verdict.bucket or "unknown").inc()
        WAITS.observe(verdict.retry_after)
        log.info(
            "login attempt blocked",
            extra={
                "bucket": verdict.bucket,
                "retry_after_s": math.ceil(verdict.retry_after),
                "subject": subject.tag,
            },
        )

    async def hit(self, rate: RateWindow) -> Verdict:
        now = self.clock()
        try:
            return await self.store.hit(rate, now)
        except StoreUnavailable as exc:
            return await self._degraded("rate", exc).hit(rate, now)

    async def remember_flow(self, flow_id: str, hold: FlowHold) -> None:
        key, now = self.names.flow_key(flow_id), self.clock()
        try:
            await self.store.remember_flow(key, hold, now)
        except StoreUnavailable as exc:
            self._store_failed("flow", exc, "in-process limiter")
            await self.fallback.remember_flow(key, hold, now)

    async def flow_lockout(self, flow_id: str) -> FlowHold | None:
        key, now = self.names.flow_key(flow_id), self.clock()
        try:
            hold = await self.store.flow_lockout(key, now)
        except StoreUnavailable as exc:
            self._store_failed("flow", exc, "in-process limiter")
            hold = None
        return hold if hold is not None else await self.fallback.flow_lockout(key, now)

    async def clear(
        self, keys: Sequence[str], prefixes: Sequence[str], *, cause: str, tag: str
    ) -> int:
        """Forget ``keys`` and every key under ``prefixes`` (support tooling: ``support``)."""
        try:
            cleared = await self.store.clear(keys, prefixes)
        except StoreUnavailable as exc:
            cleared = await self._degraded("clear", exc).clear(keys, prefixes)
        RESETS.labels(cause).inc()
        log.info("login backoff reset", extra={"subject": tag, "cause": cause})
        return cleared

    async def report(self, key: str) -> BucketReport | None:
        """The bucket named ``key`` (``names.identifier_key`` / ``address_key``), for support."""
        return await self.store.inspect(key, self.clock())
