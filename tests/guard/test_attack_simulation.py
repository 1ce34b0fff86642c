"""A simulated hour of attack against the default settings, at the store level (both stores).

The figures are printed (``pytest -s``) and asserted against what the README documents for
the defaults: at most 100 failed attempts per account per hour reach Kratos (ASVS V2.2.1).
"""

from __future__ import annotations

import pytest

from config.settings import Settings
from proxy.guard.core import Guard
from proxy.guard.identity import Keyer
from proxy.guard.store import MemoryStore, Store
from tests.guard.simulation import Clock, rotating_ips, run, spraying

HOUR = 3600.0
# The figures the README's "Login guard" section documents for the defaults.
DOCUMENTED_ROTATING = 74  # one account, 200 rotating IPs, an attempt every second
DOCUMENTED_SPRAY = 107  # one IP, 1,000 accounts, an attempt every second


def guard(store: Store, clock: Clock) -> Guard:
    return Guard(Settings(), store, fallback=MemoryStore(), keyer=Keyer("sim"), clock=clock)


async def test_one_account_from_200_rotating_ips(store: Store) -> None:
    clock = Clock()
    result = await run(guard(store, clock), clock, rotating_ips(HOUR, 1.0, ips=200))
    print(
        f"\n[{type(store).__name__}] one account, 200 IPs, 3600 attempts/h: "
        f"{result.reached} reached Kratos, blocked by {dict(result.blocked)}"
    )
    assert result.reached <= 100
    assert result.reached == DOCUMENTED_ROTATING
    assert set(result.blocked) == {"identifier"}


async def test_one_ip_spraying_1000_accounts(store: Store) -> None:
    clock = Clock()
    result = await run(guard(store, clock), clock, spraying(HOUR, 1.0, accounts=1000))
    print(
        f"\n[{type(store).__name__}] one IP, 1000 accounts, 3600 attempts/h: "
        f"{result.reached} reached Kratos (max {max(result.per_account.values())} per "
        f"account), blocked by {dict(result.blocked)}"
    )
    assert result.reached == DOCUMENTED_SPRAY
    assert max(result.per_account.values()) <= 2  # the rotation wraps once in the hour


@pytest.mark.parametrize("hours", [3])
async def test_the_hourly_bound_holds_for_a_long_attack(store: Store, hours: int) -> None:
    """Later hours of a sustained attack reach Kratos less, never more, than the first."""
    clock = Clock()
    result = await run(guard(store, clock), clock, rotating_ips(hours * HOUR, 2.0, ips=200))
    assert result.reached <= 100 * hours
    assert result.reached <= DOCUMENTED_ROTATING + (hours - 1) * HOUR / 60 + 1
