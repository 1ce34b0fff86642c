"""One clock for all timeouts, advanced by one periodic sweep.

A timer handle per request (``call_later``) or ``asyncio.wait_for`` per exchange costs more
than the rest of a small pass-through request. Instead every connection stores the clock's
value when it last made progress, and one task per listener wakes a few times per shortest
timeout, advances the clock and closes what has been silent too long. Resolution: the sweep
interval (at most a second).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Clock:
    """``now``: the event loop's time at the last sweep (coarse, free to read)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = asyncio.get_running_loop().time()


def sweep_interval(timeouts: list[float]) -> float:
    """A quarter of the shortest enabled timeout, between 50 ms and 1 s."""
    shortest = min((t for t in timeouts if t > 0), default=4.0)
    return max(0.05, min(1.0, shortest / 4))


async def run_sweeps(clock: Clock, interval: float, sweep: Callable[[float], None]) -> None:
    """Advance ``clock`` and call ``sweep(now)`` every ``interval`` seconds, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        clock.now = now = loop.time()
        sweep(now)
