"""What both listeners of one process share, made once by the composition root.

``Shared.open`` builds, per process and configuration, the one Redis client, the login guard
(with its in-memory stores and secret), the event bus that carries the edge's logout to the
decisions' cache, the hooks' gate and the health registry; both app factories receive it, and
``close`` ends what it opened — after both listeners have drained. No module keeps a registry:
two services started in one test process share nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis

from config.settings import Settings
from proxy.guard.core import Guard
from proxy.guard.install import make_guard
from proxy.kernel.bus import Bus
from proxy.kernel.health_registry import Health
from proxy.kernel.hook_gate import ENABLING_SETTINGS, HookGate
from proxy.kernel.redis import make_client, redis_probe

log = logging.getLogger("kratos_hooks")


@dataclass(slots=True)
class Shared:
    settings: Settings
    health: Health
    bus: Bus
    redis: aioredis.Redis | None
    guard: Guard
    hook_gate: HookGate

    @classmethod
    def open(cls, settings: Settings) -> Shared:
        url = settings.store.redis_url
        client = make_client(url) if url else None
        health = Health()
        health.register("redis", redis_probe(client))
        gate = HookGate.from_settings(settings.hooks)
        _announce_gate(gate)
        return cls(settings, health, Bus(), client, make_guard(settings, client), gate)

    async def close(self) -> None:
        await self.guard.drain()  # attempts still settling land before Redis closes
        if self.redis is not None:
            await self.redis.aclose()


def _announce_gate(gate: HookGate) -> None:
    credentials = gate.credentials
    if credentials.configured:
        return
    if credentials.insecure:
        log.warning(
            "HOOKS_INSECURE_NO_AUTH is set: the Kratos hooks accept UNAUTHENTICATED calls; "
            "never run like this outside a laptop"
        )
    else:
        log.warning(
            "no hook credentials configured: /hooks/kratos/* answer 503 until %s is set",
            ENABLING_SETTINGS,
        )
