"""Liveness and readiness: the registry every feature reports its dependencies to.

``/health/alive`` answers while the event loop runs. ``/health/ready`` is 200 while the
listeners are up and the service is not draining; each dependency's state is reported in the
body. A dependency marked critical turns readiness to 503 when it is down; the others only
mark the service "degraded" (Kratos down, say, is the same for every replica: taking this one
out of rotation would not help anyone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Probe = Callable[[], Awaitable[dict[str, Any]]]
PROBE_TIMEOUT = 2.0


@dataclass(slots=True)
class Health:
    listening: bool = False
    draining: bool = False
    probes: dict[str, tuple[Probe, bool]] = field(default_factory=dict)

    def register(self, name: str, probe: Probe, *, critical: bool = False) -> None:
        """``probe`` returns at least ``{"status": "ok"|"degraded"|"down"|"embedded"}``."""
        self.probes[name] = (probe, critical)

    async def report(self) -> tuple[int, dict[str, Any]]:
        names = list(self.probes)
        results = await asyncio.gather(*(_run(self.probes[n][0]) for n in names))
        checks = dict(zip(names, results, strict=True))
        critical_down = any(checks[n]["status"] == "down" and self.probes[n][1] for n in names)
        degraded = any(c["status"] in {"down", "degraded"} for c in checks.values())
        if self.draining or not self.listening or critical_down:
            status = "draining" if self.draining else "unavailable"
            return 503, {"status": status, "checks": checks}
        return 200, {"status": "degraded" if degraded else "ok", "checks": checks}


async def _run(probe: Probe) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(probe(), PROBE_TIMEOUT)
    except TimeoutError:
        result = {"status": "down", "error": "timeout"}
    except Exception as exc:  # a probe reports, it never breaks the endpoint
        result = {"status": "down", "error": type(exc).__name__}
    result.setdefault("latency_ms", round((time.perf_counter() - started) * 1000, 1))
    return result
