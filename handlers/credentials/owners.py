"""Is a PAT's owner still an active identity? Asked of Kratos' admin API on a cache miss,
remembered per identity for the cache TTL (all of one user's tokens share one answer), and
concurrent questions about one identity share one call.

A deleted identity (404) or an inactive one refuses its tokens; Kratos' admin API failing is
``AdminUnavailable`` — the caller fails closed (503) and nothing is remembered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from handlers.credentials.principal import Owner, owner_of
from proxy.kernel.kratos_admin import IdentityGone, KratosAdmin

GONE = Owner("inactive")
MAX_OWNERS = 10_000


class Owners:
    def __init__(
        self,
        admin: Callable[[], KratosAdmin],
        roles_path: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin = admin
        self._roles_path = roles_path
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[Owner, float]] = {}
        self._inflight: dict[str, asyncio.Task[Owner]] = {}

    def forget(self, identity_id: str) -> None:
        self._known.pop(identity_id, None)

    async def check(self, identity_id: str) -> Owner:
        known = self._known.get(identity_id)
        if known is not None and known[1] > self._clock():
            return known[0]
        task = self._inflight.get(identity_id)
        if task is None:
            task = asyncio.create_task(self._ask(identity_id))
            self._inflight[identity_id] = task
            task.add_done_callback(lambda _: self._inflight.pop(identity_id, None))
        return await asyncio.shield(task)

    async def _ask(self, identity_id: str) -> Owner:
        try:
            owner = owner_of(await self._admin().get_identity(identity_id), self._roles_path)
        except IdentityGone:
            owner = GONE
        if len(self._known) >= MAX_OWNERS:
            self._known.clear()
        self._known[identity_id] = (owner, self._clock() + self._ttl)
        return owner
