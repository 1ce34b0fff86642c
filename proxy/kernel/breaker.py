"""Circuit breakers for the hooks' HTTP dependencies (Kratos Admin API, platform API).

Closed: calls go through; N consecutive failures open it. Open: calls are refused at once
(the caller falls back or records the work for later) until the cool-down has passed; then
one probe call is let through (half-open): its success closes the breaker, its failure opens
it again for another cool-down. The clock is injectable so the policy is tested directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import ClientError, ClientResponse
from multidict import CIMultiDictProxy
from prometheus_client import Counter, Gauge

BREAKER_STATE = Gauge(
    "kratos_hooks_breaker_state",
    "Circuit breaker state by dependency: 0 closed, 1 half-open, 2 open.",
    ["name"],
)
BREAKER_OPENED = Counter(
    "kratos_hooks_breaker_opened_total", "Times a circuit breaker opened, by dependency.", ["name"]
)


State = Literal["closed", "half_open", "open"]
_GAUGE: dict[State, int] = {"closed": 0, "half_open": 1, "open": 2}


class BreakerOpen(Exception):
    """The dependency is known to be failing; the call was not made."""


@dataclass(slots=True)
class CircuitBreaker:
    name: str
    failure_threshold: int = 5
    cooldown: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = field(default=False)

    def __post_init__(self) -> None:
        BREAKER_STATE.labels(self.name).set(0)

    @property
    def state(self) -> State:
        if self.failures < self.failure_threshold:
            return "closed"
        if self.clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a call be made now? In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.probing:
            self.probing = True
            self._publish()
            return True
        return False

    def check(self) -> None:
        if not self.allow():
            raise BreakerOpen(self.name)

    def success(self) -> None:
        self.failures = 0
        self.probing = False
        self._publish()

    def failure(self) -> None:
        was_open = self.failures >= self.failure_threshold
        self.failures += 1
        self.probing = False
        if self.failures >= self.failure_threshold:
            # A failed probe restarts the cool-down; a fresh opening is counted once.
            self.opened_at = self.clock()
            if not was_open:
                BREAKER_OPENED.labels(self.name).inc()
        self._publish()

    def report(self) -> dict[str, object]:
        state = self.state
        BREAKER_STATE.labels(self.name).set(_GAUGE[state])
        return {
            "status": "ok" if state == "closed" else "degraded",
            "state": state,
            "consecutive_failures": self.failures,
        }

    def _publish(self) -> None:
        BREAKER_STATE.labels(self.name).set(_GAUGE[self.state])

    async def request(
        self,
        call: Callable[[], AbstractAsyncContextManager[ClientResponse]],
        unavailable: type[Exception],
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """Make ``call()`` through the breaker: (status, headers, body); a network error,
        a timeout or a 5xx counts as a failure and raises ``unavailable``, anything else as a
        success. An open breaker raises ``unavailable`` without calling."""
        if not self.allow():
            raise unavailable("circuit open")
        try:
            async with call() as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except (ClientError, TimeoutError) as exc:
            self.failure()
            raise unavailable(type(exc).__name__) from exc
        if status >= 500:
            self.failure()
            raise unavailable(f"HTTP {status}")
        self.success()
        return status, headers, raw
