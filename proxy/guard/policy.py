"""Backoff arithmetic and bucket definitions: pure, synchronous, clock passed in.

A bucket remembers ``failures`` and the time of the last one. The first ``free`` failures
cost nothing; from then on the bucket waits ``base * 2^(failures - free)`` seconds (capped)
after its last failure before it lets another attempt through. Attempts in flight
(``in_flight``: reserved, outcome not known yet) count as failures for the free allowance and
hold a bucket that is past it, so 50 simultaneous attempts never let more through than 50
sequential ones would. The Lua script in ``store_lua`` implements exactly ``judge`` and
``apply``; the tests run both against the same schedules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from config.backoff import BackoffSettings

# A blocked caller is never told to come back sooner than this.
MIN_RETRY = 1.0
# 2^60 seconds is longer than any cap; beyond it the float arithmetic is pointless.
MAX_EXPONENT = 60


class Outcome(enum.Enum):
    SUCCESS = "success"  # a session was issued (or the password step passed)
    FAILURE = "failure"  # Kratos rejected the credentials
    NOT_COUNTED = "not_counted"  # expired flow, CSRF, 5xx, timeout …: says nothing


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    free: int
    base: float
    cap: float
    window: float  # the bucket is forgotten this long after its last failure

    def wait(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        exponent = min(failures - self.free, MAX_EXPONENT)
        return min(self.base * 2.0**exponent, self.cap)


@dataclass(frozen=True, slots=True)
class Policies:
    identifier: BucketPolicy
    ip: BucketPolicy
    pair: BucketPolicy

    @classmethod
    def from_settings(cls, s: BackoffSettings) -> Policies:
        return cls(
            identifier=BucketPolicy(
                s.identifier_free, s.identifier_base, s.identifier_max, s.identifier_window
            ),
            ip=BucketPolicy(s.ip_free, s.ip_base, s.ip_max, s.ip_window),
            pair=BucketPolicy(s.pair_free, s.pair_base, s.pair_max, s.pair_window),
        )


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket an attempt touches: its kind (for metrics), store key and policy."""

    kind: str  # "identifier" | "ip" | "pair"
    key: str
    policy: BucketPolicy
    reset_on_success: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    bucket: str | None = None  # the kind that blocked ("rate" for the plain window)
    retry_after: float = 0.0


ALLOWED = Verdict(True)


@dataclass(slots=True)
class BucketState:
    failures: int = 0
    last_failure: float = 0.0
    in_flight: int = 0


def judge(policy: BucketPolicy, state: BucketState, now: float) -> float:
    """0 when the bucket lets an attempt through now, else the seconds to wait."""
    failures, in_flight = state.failures, state.in_flight
    if failures + in_flight < policy.free:
        return 0.0
    remaining = state.last_failure + policy.wait(failures) - now
    if in_flight == 0 and remaining <= 0:
        return 0.0
    # Held by attempts in flight: if they all fail, this is the wait they start.
    pending = policy.wait(failures + in_flight) if in_flight else 0.0
    return max(remaining, pending, MIN_RETRY)


def decide(judged: list[tuple[str, float]]) -> Verdict:
    """The verdict over every bucket: the longest wait wins (and names the bucket)."""
    kind, wait = max(judged, key=lambda item: item[1], default=("", 0.0))
    return ALLOWED if wait <= 0 else Verdict(False, kind, wait)


def apply(state: BucketState, outcome: Outcome, now: float, *, reset: bool) -> bool:
    """Fold an outcome into a bucket; True when the bucket should be deleted."""
    if outcome is Outcome.FAILURE:
        state.failures += 1
        state.last_failure = now
        return False
    return outcome is Outcome.SUCCESS and reset


def format_wait(seconds: float) -> str:
    """The wait as a person reads it; the same text for every account, existing or not."""
    whole = max(1, int(-(-seconds // 1)))
    if whole < 120:
        return f"{whole} second" + ("" if whole == 1 else "s")
    minutes = -(-whole // 60)
    return f"{minutes} minutes"
