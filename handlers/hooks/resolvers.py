"""Who is this Kratos identity on the platform? A chain of resolvers, tried in order.

Each resolver answers ``Resolved`` (found), ``None`` (the platform has no such user yet: a
normal state right after registration) or raises ``ResolverUnavailable`` (its dependency is
down, so the next resolver is asked). Only when every resolver is unavailable does the chain
fail. ``not found`` is final: every resolver reads the same platform data.

The nil UUID (an identity Kratos has not persisted yet) is never asked about: it names no
platform user. Such an identity is resolved by a trait (``TraitLookup``) or not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout
from aiohttp_retry import ExponentialRetry, RetryClient

from handlers.hooks.hook_metrics import RESOLUTIONS
from handlers.hooks.lookup import is_nil, trait_value
from proxy.kernel.breaker import CircuitBreaker
from proxy.kernel.pg import bounded, create_pool

log = logging.getLogger("kratos_hooks.hooks.resolvers")


@dataclass(frozen=True, slots=True)
class Resolved:
    user_id: str
    agent_id: str


class ResolverUnavailable(Exception):
    """This resolver cannot answer now; the chain moves on."""


class ResolutionFailed(Exception):
    """No resolver could answer."""


class Resolver(Protocol):
    name: str

    async def resolve(self, identity_id: str) -> Resolved | None: ...

    async def close(self) -> None: ...

    def report(self) -> dict[str, Any]: ...


class PostgresResolver:
    """The platform's own table, read with a pooled, prepared statement (``$1`` = the key)."""

    def __init__(self, dsn: str, query: str, *, timeout: float, name: str = "postgres") -> None:
        self.name = name
        self.dsn = dsn
        self.query = query
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._last_error = ""

    async def _get_pool(self) -> asyncpg.Pool:
        # Made on first use, so the service starts while the platform database is down.
        async with self._lock:
            if self._pool is None:
                self._pool = await create_pool(self.dsn, timeout=self.timeout)
            return self._pool

    async def resolve(self, identity_id: str) -> Resolved | None:
        try:
            pool = await self._get_pool()
            # asyncpg prepares the statement once per connection and caches it.
            row = await bounded(pool, "fetchrow", self.query, identity_id, timeout=self.timeout)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._last_error = type(exc).__name__
            raise ResolverUnavailable(self._last_error) from exc
        self._last_error = ""
        if row is None or row[0] is None:
            return None
        return Resolved(str(row[0]), "" if row[1] is None else str(row[1]))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    def report(self) -> dict[str, Any]:
        if self._last_error:
            return {"status": "degraded", "error": self._last_error}
        return {"status": "ok"}


class ApiResolver:
    """The platform server's resolution endpoint, retried on network errors and 5xx."""

    name = "api"

    def __init__(
        self,
        session: ClientSession,
        url: str,
        *,
        timeout: float,
        attempts: int,
        breaker: CircuitBreaker,
    ) -> None:
        self.url = url
        self.breaker = breaker
        retry = ExponentialRetry(
            attempts=max(1, attempts),
            start_timeout=0.1,
            max_timeout=1.0,
            statuses={s for s in range(500, 600) if s != 501},
            exceptions={ClientError, asyncio.TimeoutError},
        )
        self.client = RetryClient(client_session=session, retry_options=retry)
        self.timeout = ClientTimeout(total=timeout)

    async def resolve(self, identity_id: str) -> Resolved | None:
        body = orjson.dumps({"authenticationId": identity_id})
        status, _, raw = await self.breaker.request(
            lambda: self.client.post(
                self.url,
                data=body,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=self.timeout,
            ),
            ResolverUnavailable,
        )
        if status == 404:
            return None
        if status != 200:
            # Other 4xx are permanent: retrying the same call cannot help.
            raise ResolverUnavailable(f"HTTP {status} (permanent)")
        try:
            document = orjson.loads(raw)
            return Resolved(str(document["userId"]), str(document.get("agentId") or ""))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ResolverUnavailable("unexpected answer") from exc

    async def close(self) -> None:
        """The session belongs to the app's cleanup_ctx, not to this resolver."""

    def report(self) -> dict[str, Any]:
        return self.breaker.report()


class ResolverChain:
    def __init__(self, resolvers: Sequence[Resolver]) -> None:
        self.resolvers = list(resolvers)

    async def resolve(self, identity_id: str) -> Resolved | None:
        if is_nil(identity_id):
            return None  # not persisted: no platform user is bound to it (see the docstring)
        reasons: list[str] = []
        for resolver in self.resolvers:
            try:
                found = await resolver.resolve(identity_id)
            except ResolverUnavailable as exc:
                RESOLUTIONS.labels(resolver.name, "unavailable").inc()
                reasons.append(f"{resolver.name}: {exc}")
                continue
            RESOLUTIONS.labels(resolver.name, "found" if found else "not_found").inc()
            if reasons:
                log.warning(
                    "resolver unavailable, the next one answered",
                    extra={"reasons": reasons, "answered_by": resolver.name},
                )
            return found
        if reasons:
            log.warning("no resolver could answer", extra={"reasons": reasons})
        raise ResolutionFailed("; ".join(reasons) or "no resolver configured")

    async def close(self) -> None:
        for resolver in self.resolvers:
            await resolver.close()


class TraitLookup:
    """A not-yet-persisted identity resolved by one of its traits (e.g. the email), in the
    platform database only: the platform API knows nothing but ``authenticationId``."""

    def __init__(self, trait: str, resolver: PostgresResolver) -> None:
        self.trait = trait
        self.resolver = resolver

    async def resolve(self, identity: Mapping[str, Any] | None) -> Resolved | None:
        """The platform user whose trait matches; None when the identity has no such trait
        or nobody matches. Raises ``ResolutionFailed`` when the database cannot answer."""
        value = trait_value(identity, self.trait)
        if value is None:
            return None
        name = self.resolver.name
        try:
            found = await self.resolver.resolve(value)
        except ResolverUnavailable as exc:
            RESOLUTIONS.labels(name, "unavailable").inc()
            raise ResolutionFailed(f"{name}: {exc}") from exc
        RESOLUTIONS.labels(name, "found" if found else "not_found").inc()
        return found

    async def close(self) -> None:
        await self.resolver.close()
