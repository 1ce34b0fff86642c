"""Where bucket state lives: the protocol, and the in-process store.

``MemoryStore`` is both the embedded store (no ``REDIS_URL``: single replica) and the
bounded degraded-mode limiter used while Redis is unreachable; it applies the pure policy
functions directly, so it behaves exactly like the Lua script. ``RedisStore`` is in
``redis_store``. Every operation an attempt needs is one call (one Redis round trip).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from proxy.guard.policy import (
    ALLOWED,
    MIN_RETRY,
    Bucket,
    BucketState,
    Outcome,
    Verdict,
    apply,
    decide,
    judge,
)
from proxy.kernel.redis import RedisUnavailable

# The store could not answer (Redis down, timed out, or refused the script): the kernel's one
# translation of Redis failures, under the name the store protocol uses.
StoreUnavailable = RedisUnavailable


@dataclass(frozen=True, slots=True)
class RateWindow:
    """A plain fixed window: at most ``limit`` submissions until ``ends_at``."""

    key: str
    limit: int
    ends_at: float


@dataclass(frozen=True, slots=True)
class FlowHold:
    """A refused submission's flow, until when it shows why, and whether the reason was a
    plain rate window (``rate``) rather than the backoff."""

    until: float
    rate: bool = False


@dataclass(frozen=True, slots=True)
class BucketReport:
    """What ``kratos-hooks backoff status`` shows for one bucket."""

    failures: int
    last_failure: float
    in_flight: int
    expires_in: float


class Store(Protocol):
    async def reserve(
        self,
        buckets: Sequence[Bucket],
        token: str,
        now: float,
        lease: float,
        *,
        count: bool = False,
        rate: RateWindow | None = None,
    ) -> Verdict:
        """Judge every bucket (and the window); when all allow, hold a place for ``token``
        (or, with ``count``, record a failure at once — for callers that report no outcome)."""
        ...

    async def settle(
        self, buckets: Sequence[Bucket], token: str, outcome: Outcome, now: float
    ) -> None: ...

    async def hit(self, rate: RateWindow, now: float) -> Verdict: ...

    async def remember_flow(self, key: str, hold: FlowHold, now: float) -> None: ...

    async def flow_lockout(self, key: str, now: float) -> FlowHold | None: ...

    async def inspect(self, key: str, now: float) -> BucketReport | None: ...

    async def clear(self, keys: Sequence[str], prefixes: Sequence[str]) -> int: ...


@dataclass(slots=True)
class _Entry:
    state: BucketState = field(default_factory=BucketState)
    expires_at: float = 0.0
    leases: dict[str, float] = field(default_factory=dict)

    def live_leases(self, now: float) -> int:
        for token in [t for t, until in self.leases.items() if until <= now]:
            del self.leases[token]
        return len(self.leases)


class MemoryStore:
    """Buckets in this process, least recently used evicted beyond ``max_keys``."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._max = max_keys
        self._buckets: OrderedDict[str, _Entry] = OrderedDict()
        self._flows: OrderedDict[str, FlowHold] = OrderedDict()
        self._windows: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _entry(self, key: str, now: float, *, create: bool) -> _Entry | None:
        entry = self._buckets.get(key)
        if entry is not None and entry.expires_at <= now and entry.live_leases(now) == 0:
            del self._buckets[key]
            entry = None
        if entry is None and create:
            entry = self._buckets[key] = _Entry()
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        if entry is not None:
            self._buckets.move_to_end(key)
        return entry

    def _state(self, key: str, now: float) -> BucketState:
        entry = self._entry(key, now, create=False)
        if entry is None:
            return BucketState()
        state = entry.state
        return BucketState(state.failures, state.last_failure, entry.live_leases(now))

    def _count(self, rate: RateWindow, now: float) -> Verdict:
        count, ends = self._windows.get(rate.key, (0, rate.ends_at))
        self._windows[rate.key] = (count + 1, ends)
        self._windows.move_to_end(rate.key)
        while len(self._windows) > self._max or (
            self._windows and next(iter(self._windows.values()))[1] <= now
        ):
            self._windows.popitem(last=False)
        if count + 1 > rate.limit:
            return Verdict(False, "rate", max(rate.ends_at - now, MIN_RETRY))
        return ALLOWED

    async def reserve(
        self,
        buckets: Sequence[Bucket],
        token: str,
        now: float,
        lease: float,
        *,
        count: bool = False,
        rate: RateWindow | None = None,
    ) -> Verdict:
        if rate is not None:
            verdict = self._count(rate, now)
            if not verdict.allowed:
                return verdict
        verdict = decide([(b.kind, judge(b.policy, self._state(b.key, now), now)) for b in buckets])
        if not verdict.allowed:
            return verdict
        for bucket in buckets:
            entry = self._entry(bucket.key, now, create=True)
            assert entry is not None
            if count:
                apply(entry.state, Outcome.FAILURE, now, reset=False)
                entry.expires_at = now + bucket.policy.window
            else:
                entry.leases[token] = now + lease
                entry.expires_at = max(entry.expires_at, now + lease)
        return verdict

    async def settle(
        self, buckets: Sequence[Bucket], token: str, outcome: Outcome, now: float
    ) -> None:
        for bucket in buckets:
            entry = self._entry(bucket.key, now, create=outcome is Outcome.FAILURE)
            if entry is None:
                continue
            entry.leases.pop(token, None)
            forget = apply(entry.state, outcome, now, reset=bucket.reset_on_success)
            if outcome is Outcome.FAILURE:
                entry.expires_at = now + bucket.policy.window
            elif entry.state.failures == 0 and not entry.leases:
                forget = True  # nothing left to remember, as Redis drops an empty set
            if forget:
                del self._buckets[bucket.key]

    async def hit(self, rate: RateWindow, now: float) -> Verdict:
        return self._count(rate, now)

    async def remember_flow(self, key: str, hold: FlowHold, now: float) -> None:
        self._flows[key] = hold
        self._flows.move_to_end(key)
        while len(self._flows) > self._max:
            self._flows.popitem(last=False)

    async def flow_lockout(self, key: str, now: float) -> FlowHold | None:
        hold = self._flows.get(key)
        if hold is None or hold.until <= now:
            self._flows.pop(key, None)
            return None
        return hold

    async def inspect(self, key: str, now: float) -> BucketReport | None:
        entry = self._entry(key, now, create=False)
        if entry is None:
            return None
        live = entry.live_leases(now)
        return BucketReport(
            entry.state.failures, entry.state.last_failure, live, entry.expires_at - now
        )

    async def clear(self, keys: Sequence[str], prefixes: Sequence[str]) -> int:
        doomed = [k for k in self._buckets if k in keys or k.startswith(tuple(prefixes))]
        for key in doomed:
            del self._buckets[key]
        return len(doomed)
