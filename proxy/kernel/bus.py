"""Events one feature announces and others act on, inside one process — the only way
features talk to each other (the import contracts forbid one feature importing another).

``publish`` awaits every subscriber before it returns, so an announcement is acted on before
the caller goes on (the logout watch answers the client only once the decision cache has
purged the session); a subscriber that fails is logged and counted by the caller's outcome,
never raised into it. Spreading an event to other replicas is the subscriber's business
(the decisions' purge does it over Redis pub/sub).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger("kratos_hooks.bus")


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """Kratos confirmed a logout of this session credential (a token or the session cookie's
    value — a secret: subscribers hash it, never log it)."""

    credential: str = field(repr=False)


E = TypeVar("E")
Subscriber = Callable[[Any], Awaitable[None]]


class Bus:
    def __init__(self) -> None:
        self._subscribers: dict[type, list[Subscriber]] = {}

    def subscribe(self, kind: type[E], subscriber: Callable[[E], Awaitable[None]]) -> None:
        self._subscribers.setdefault(kind, []).append(subscriber)

    async def publish(self, event: object) -> None:
        for subscriber in self._subscribers.get(type(event), ()):
            try:
                await subscriber(event)
            except Exception:
                log.exception("a subscriber failed", extra={"event": type(event).__name__})
