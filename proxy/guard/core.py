"""The guard's decisions: which buckets an attempt touches, which store answers, and what
happens when that store cannot.

One ``Guard`` per process and configuration is shared by the public listener (the proxy),
the internal one (the compatibility endpoints) and the CLI. Redis failures are translated
here, in one place: fail-open onto the bounded in-process limiter (default) or fail-closed
(``DependencyUnavailable``, 503).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config.settings import Settings
from proxy.guard.classify import back_to_flow
from proxy.guard.guard_metrics import ATTEMPTS, BLOCKS, RESETS, STORE_ERRORS, WAITS
from proxy.guard.identity import Keyer, address_group, normalise_identifier
from proxy.guard.policy import Bucket, Outcome, Policies, Verdict
from proxy.guard.store import (
    BucketReport,
    FlowHold,
    MemoryStore,
    RateWindow,
    Store,
    StoreUnavailable,
)
from proxy.kernel.digests import sha256_hex
from proxy.kernel.errors import DependencyUnavailable
from proxy.kernel.logs import fingerprint

log = logging.getLogger("kratos_hooks.guard")

# A store outage is logged at most this often; the metric counts every failure.
WARN_EVERY = 10.0
BUCKETS = "bo:"


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom an attempt is about, already hashed: never the identifier itself."""

    identifier: str | None  # HMAC of the normalised identifier (or session/flow)
    address: str  # HMAC of the address group
    tag: str  # short fingerprint for logs


@dataclass(slots=True)
class Attempt:
    buckets: tuple[Bucket, ...]
    token: str
    store: Store
    subject: Subject
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
        self.policies = Policies.from_settings(settings.backoff)
        self.store = store
        self.fallback = fallback
        self.keyer = keyer
        self.clock = clock
        self.failure_ids = frozenset(int(i) for i in self.config.failure_message_ids)
        self._warned_at = -math.inf
        self._configured_ui = self.config.ui_urls()
        self._learned_ui: dict[str, str] = {}
        self._settling: set[asyncio.Task[None]] = set()

    def ui_url(self, kind: str) -> str | None:
        """Where a blocked browser goes: the flow kind's configured UI, else the one Kratos
        was seen to use."""
        return self._configured_ui.get(kind) or self._learned_ui.get(kind)

    def learn_ui(self, kind: str, location: str | None, flow_id: str) -> None:
        """Kratos sent a browser back to this flow's UI: that is the UI's address."""
        if kind not in self._configured_ui and (ui := back_to_flow(location, flow_id)):
            self._learned_ui[kind] = ui

    # --- naming ------------------------------------------------------------------------
    def subject(self, identifier: str | None, ip: str, *, kind: str = "identifier") -> Subject:
        hashed = None
        if identifier:
            if kind == "identifier":
                hashed = self.keyer.identifier(normalise_identifier(identifier))
            else:
                hashed = self.keyer.subject(kind, identifier)
        address = self.keyer.address(address_group(ip))
        return Subject(hashed, address, fingerprint(hashed or address))

    def identifier_key(self, identifier: str) -> str:
        return f"{BUCKETS}id:{self.keyer.identifier(normalise_identifier(identifier))}"

    def address_key(self, ip: str) -> str:
        return f"{BUCKETS}ip:{self.keyer.address(address_group(ip))}"

    def buckets(self, subject: Subject) -> tuple[Bucket, ...]:
        p = self.policies
        ip = Bucket("ip", f"{BUCKETS}ip:{subject.address}", p.ip, reset_on_success=False)
        if subject.identifier is None:
            return (ip,)
        ident = Bucket("identifier", f"{BUCKETS}id:{subject.identifier}", p.identifier, True)
        pair_key = f"{BUCKETS}pair:{subject.identifier}:{subject.address}"
        return (ident, ip, Bucket("pair", pair_key, p.pair, True))

    def flow_key(self, flow_id: str) -> str:
        return f"{BUCKETS}flow:{sha256_hex(flow_id.encode())[:32]}"

    def rate_window(self, flow: str, ip: str, limit: int) -> RateWindow | None:
        if limit <= 0:
            return None
        window = self.config.rate_window
        index = int(self.clock() // window)
        key = f"rl:{flow}:{self.keyer.address(address_group(ip))}:{index}"
        return RateWindow(key, limit, (index + 1) * window)

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
        self, subject: Subject, *, count: bool = False, rate: RateWindow | None = None
    ) -> tuple[Verdict, Attempt]:
        """Judge the attempt and, when allowed, hold its place until ``finish``."""
        attempt = Attempt(self.buckets(subject), uuid.uuid4().hex, self.store, subject)
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
        task = asyncio.get_running_loop().create_task(self._settle(attempt, outcome))
        self._settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("settling a login attempt failed", exc_info=exc)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for attempts still settling (at shutdown, before the store closes)."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=timeout)

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

    def blocked(self, verdict: Verdict, subject: Subject) -> None:
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
        key, now = self.flow_key(flow_id), self.clock()
        try:
            await self.store.remember_flow(key, hold, now)
        except StoreUnavailable as exc:
            self._store_failed("flow", exc, "in-process limiter")
            await self.fallback.remember_flow(key, hold, now)

    async def flow_lockout(self, flow_id: str) -> FlowHold | None:
        key, now = self.flow_key(flow_id), self.clock()
        try:
            hold = await self.store.flow_lockout(key, now)
        except StoreUnavailable as exc:
            self._store_failed("flow", exc, "in-process limiter")
            hold = None
        return hold if hold is not None else await self.fallback.flow_lockout(key, now)

    # --- support tooling (CLI, after-login hook) ----------------------------------------
    async def reset(self, identifier: str, *, cause: str, ip: str | None = None) -> int:
        """Forget the identifier bucket and its pairs (all of them, or the one for ``ip``)."""
        hashed = self.keyer.identifier(normalise_identifier(identifier))
        keys = [f"{BUCKETS}id:{hashed}"]
        prefixes: Sequence[str] = [f"{BUCKETS}pair:{hashed}:"]
        if ip is not None:
            keys.append(f"{BUCKETS}pair:{hashed}:{self.keyer.address(address_group(ip))}")
            prefixes = []
        return await self._clear(keys, prefixes, cause=cause, tag=fingerprint(hashed))

    async def reset_address(self, ip: str, *, cause: str) -> int:
        """Forget the address bucket of ``ip``'s group (its pairs stay with their accounts)."""
        hashed = self.keyer.address(address_group(ip))
        key = f"{BUCKETS}ip:{hashed}"
        return await self._clear([key], [], cause=cause, tag=fingerprint(hashed))

    async def _clear(
        self, keys: Sequence[str], prefixes: Sequence[str], *, cause: str, tag: str
    ) -> int:
        try:
            cleared = await self.store.clear(keys, prefixes)
        except StoreUnavailable as exc:
            cleared = await self._degraded("clear", exc).clear(keys, prefixes)
        RESETS.labels(cause).inc()
        log.info("login backoff reset", extra={"subject": tag, "cause": cause})
        return cleared

    async def report(self, key: str) -> BucketReport | None:
        """The bucket named ``key`` (``identifier_key`` / ``address_key``), for support."""
        return await self.store.inspect(key, self.clock())
