"""Backoff arithmetic, judged as a user and an attacker would feel it."""

from __future__ import annotations

from proxy.guard.policy import (
    BucketPolicy,
    BucketState,
    Outcome,
    apply,
    decide,
    format_wait,
    judge,
)

POLICY = BucketPolicy(free=3, base=2.0, cap=30.0, window=3600.0)


def test_free_failures_cost_nothing_then_the_wait_doubles_up_to_the_cap() -> None:
    waits = [POLICY.wait(f) for f in range(10)]
    assert waits == [0, 0, 0, 2, 4, 8, 16, 30, 30, 30]
    assert POLICY.wait(10_000) == 30  # no overflow however long an attack runs


def test_a_user_with_a_few_typos_is_never_held() -> None:
    state = BucketState()
    for second in range(3):
        assert judge(POLICY, state, now=float(second)) == 0
        apply(state, Outcome.FAILURE, float(second), reset=True)
    # The free allowance is spent: the next attempt waits base seconds after the last failure.
    assert judge(POLICY, state, now=2.5) == 1.5
    assert judge(POLICY, state, now=4.0) == 0


def test_attempts_in_flight_hold_the_free_allowance() -> None:
    assert judge(POLICY, BucketState(0, 0.0, in_flight=2), now=0) == 0
    held = judge(POLICY, BucketState(0, 0.0, in_flight=3), now=0)
    assert held == POLICY.wait(3)  # what the pending attempts start if they all fail
    # Past the allowance only one attempt may be in flight at a time.
    assert judge(POLICY, BucketState(5, 0.0, in_flight=1), now=100) > 0
    assert judge(POLICY, BucketState(5, 0.0, in_flight=0), now=100) == 0


def test_a_blocked_caller_is_never_told_to_retry_in_under_a_second() -> None:
    state = BucketState(3, 10.0)
    assert judge(POLICY, state, now=11.9) == 1.0


def test_success_resets_only_buckets_that_reset() -> None:
    state = BucketState(7, 5.0)
    assert apply(state, Outcome.SUCCESS, 6.0, reset=True) is True
    assert apply(state, Outcome.SUCCESS, 6.0, reset=False) is False
    assert apply(state, Outcome.NOT_COUNTED, 6.0, reset=True) is False
    assert state.failures == 7


def test_the_longest_wait_decides_and_names_the_bucket() -> None:
    verdict = decide([("identifier", 0.0), ("ip", 12.0), ("pair", 3.0)])
    assert not verdict.allowed and verdict.bucket == "ip" and verdict.retry_after == 12.0
    assert decide([("identifier", 0.0), ("ip", 0.0)]).allowed


def test_wait_wording() -> None:
    assert format_wait(0.2) == "1 second"
    assert format_wait(59.1) == "60 seconds"
    assert format_wait(300) == "5 minutes"
