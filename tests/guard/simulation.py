"""Attack simulations with a controllable clock, driving a ``Guard`` the way the proxy does:
``begin`` before forwarding, ``finish`` with Kratos' verdict (always wrong here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.guard.core import Guard
from proxy.guard.policy import Outcome


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Result:
    reached: int = 0
    blocked: Counter[str] = field(default_factory=Counter)
    per_account: Counter[str] = field(default_factory=Counter)


async def run(guard: Guard, clock: Clock, attempts: Iterable[tuple[float, str, str]]) -> Result:
    """``attempts``: (seconds from start, identifier, client ip), each a wrong password."""
    start = clock.now
    result = Result()
    for offset, identifier, ip in attempts:
        clock.now = start + offset
        address = guard.names.address(ip)
        rate = guard.rate_window("login", address, guard.config.rate_login)
        verdict, attempt = await guard.begin(guard.names.subject(identifier, address), rate=rate)
        if not verdict.allowed:
            result.blocked[verdict.bucket or "?"] += 1
            continue
        result.reached += 1
        result.per_account[identifier] += 1
        await guard.finish(attempt, Outcome.FAILURE)
    return result


def rotating_ips(seconds: float, every: float, ips: int) -> list[tuple[float, str, str]]:
    """One account, each attempt from the next of ``ips`` addresses."""
    count = int(seconds / every)
    return [
        (i * every, "victim@example.com", f"198.51.{i % ips // 250}.{i % ips % 250}")
        for i in range(count)
    ]


def spraying(seconds: float, every: float, accounts: int) -> list[tuple[float, str, str]]:
    """One address, each attempt at the next of ``accounts`` accounts."""
    count = int(seconds / every)
    return [(i * every, f"user{i % accounts}@example.com", "203.0.113.9") for i in range(count)]
