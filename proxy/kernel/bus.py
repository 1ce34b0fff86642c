"""Events one feature announces and others act on, inside one process — the only way
features talk to each other (the import contracts forbid one feature importing another).

``publish`` awaits every subscriber before it returns, so an announcement is acted on before
the caller goes on (the logout watch answers the client only once the session cache has
purged the session; a leak report is answered once the owner's notice is in the outbox); a
subscriber that fails is logged, never raised into the caller, which learns only whether
every subscriber took the event. Spreading an event to other replicas is the subscriber's
business (the session purge does it over Redis pub/sub).

    SessionEnded   edge logout watch  ─►  kernel sessions (purge the session cache)
    TokenNotice    credentials        ─►  hooks (TOKEN_LEAKED / TOKEN_EXPIRING into the outbox)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger("kratos_hooks.bus")


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """Kratos confirmed a logout of this session credential (a token or the session cookie's
    value — a secret: subscribers hash it, never log it)."""

    credential: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TokenNotice:
    """A token's owner must be told: it was reported leaked (and is revoked now), or it
    expires soon. No secret in it: the token's id, kind, name, hint and dates."""

    event: Literal["leaked", "expiring"]
    token_id: str
    kind: str  # pat | key | svc
    owner: str  # the identity id of a PAT; an organisation or a service otherwise
    name: str
    hint: str
    scopes: tuple[str, ...]
    expires_at: float | None
    at: float  # when it was revoked (leaked) or noticed (expiring)
    source: str = ""  # who reported the leak


E = TypeVar("E")
Subscriber = Callable[[Any], Awaitable[None]]


class Bus:
    def __init__(self) -> None:
        self._subscribers: dict[type, list[Subscriber]] = {}

    def subscribe(self, kind: type[E], subscriber: Callable[[E], Awaitable[None]]) -> None:
        self._subscribers.setdefault(kind, []).append(subscriber)

    async def publish(self, event: object) -> bool:
        """Hand ``event`` to every subscriber; whether at least one took it and none failed."""
        subscribers = self._subscribers.get(type(event), ())
        delivered = bool(subscribers)
        for subscriber in subscribers:
            try:
                await subscriber(event)
            except Exception:
                delivered = False
                log.exception("a subscriber failed", extra={"event": type(event).__name__})
        return delivered
