"""What both listeners of one process share, made once by the composition root.

``Shared.open`` builds, per process and configuration, the one Redis client, the login guard
(with its in-memory stores and secret), the event bus (the edge's logout to the session
cache, the credentials' notices to the hooks' outbox), the Kratos session look-ups both the
decisions and the token page use, the credentials feature (its verifier is what the
decisions' ``token`` authenticator asks), the hooks' gate and the health registry; both app
factories receive it, and ``close`` ends what it opened — after both listeners have drained.
No module keeps a registry: two services started in one test process share nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from config.settings import Settings
from handlers.credentials.install import make_credentials
from handlers.credentials.service import Credentials
from proxy.guard.core import Guard
from proxy.guard.install import make_guard
from proxy.kernel.bus import Bus
from proxy.kernel.health_registry import Health
from proxy.kernel.hook_gate import ENABLING_SETTINGS, HookGate
from proxy.kernel.redis import RedisClient, close_client, make_client, redis_probe
from proxy.kernel.redis_pipe import RedisPipe
from proxy.kernel.sessions import Sessions

log = logging.getLogger("kratos_hooks")


@dataclass(slots=True)
class Shared:
    settings: Settings
    health: Health
    bus: Bus
    redis: RedisClient | None
    redis_pipe: RedisPipe | None  # the guard's hot-path scripts (``kernel.redis_pipe``)
    guard: Guard
    hook_gate: HookGate
    sessions: Sessions
    credentials: Credentials | None

    @classmethod
    def open(cls, settings: Settings) -> Shared:
        url = settings.store.redis_url
        client = make_client(url) if url else None
        pipe = RedisPipe(url) if url and RedisPipe.serves(url) else None
        health = Health()
        health.register("redis", redis_probe(client))
        gate = HookGate.from_settings(settings.hooks)
        _announce_gate(gate)
        bus = Bus()
        return cls(
            settings,
            health,
            bus,
            client,
            pipe,
            make_guard(settings, client, pipe),
            gate,
            Sessions(settings, client, bus),
            make_credentials(settings, client, bus),
        )

    async def close(self) -> None:
        await self.guard.drain()  # attempts still settling land before Redis closes
        if self.credentials is not None:
            await self.credentials.close()
        await self.sessions.close()
        if self.redis_pipe is not None:
            await self.redis_pipe.close()
        if self.redis is not None:
            await close_client(self.redis)


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
