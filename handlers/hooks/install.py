"""Wiring of the hooks into the internal app: routes, one cleanup_ctx per resource, probes.

Everything starts without its dependencies: the broker connection is made in the
background, database pools on first use, so ``make run`` works with no configuration and a
dependency outage shows up as "degraded" in ``/health/ready``, never as a failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientSession, web

from config.settings import Settings
from handlers.hooks.common import hook
from handlers.hooks.delivery import Deliveries
from handlers.hooks.fallback import FallbackOutbox
from handlers.hooks.hook_keys import (
    ADMIN_SESSION,
    BACKGROUND,
    DELIVERIES,
    OUTBOX,
    PLATFORM_SESSION,
    PUBLISHER,
    RELAY,
    RESERVATIONS,
    RESOLVERS,
    SYNC,
)
from handlers.hooks.identity_hook import identity
from handlers.hooks.outbox import Outbox, OutboxUnavailable, PostgresOutbox
from handlers.hooks.publisher import Publisher
from handlers.hooks.relay import Relay, publish_stats
from handlers.hooks.reservation import Reservations
from handlers.hooks.resolvers import (
    ApiResolver,
    PostgresResolver,
    Resolver,
    ResolverChain,
    TraitLookup,
)
from handlers.hooks.spool import SpoolOutbox, spool_filename
from handlers.hooks.sync import IdentitySync, MetadataKeys
from handlers.hooks.token_events import notices
from handlers.hooks.verification import verification
from proxy.kernel.bus import Bus, TokenNotice
from proxy.kernel.health_registry import Health
from proxy.kernel.http_clients import api_session, breaker, session_context
from proxy.kernel.kernel_keys import REDIS, SETTINGS
from proxy.kernel.kratos_admin import KratosAdmin

log = logging.getLogger("kratos_hooks.hooks")


def make_database_outbox(settings: Settings) -> PostgresOutbox | None:
    if not settings.store.database_url:
        return None
    # Half the budget: a hung database must still leave the hook time to answer.
    return PostgresOutbox(
        settings.store.database_url,
        settings.hooks.outbox_table,
        timeout=max(0.2, settings.hooks.budget / 2),
    )


def make_outbox(settings: Settings) -> Outbox:
    spool = SpoolOutbox(
        settings.store.spool_dir, retention=settings.hooks.once_retention, filename=spool_filename()
    )
    database = make_database_outbox(settings)
    return spool if database is None else FallbackOutbox(database, spool)


def make_resolvers(settings: Settings, session: ClientSession) -> ResolverChain:
    hooks = settings.hooks
    chain: list[Resolver] = []
    for name in hooks.resolvers:
        if name == "postgres" and hooks.platform_database_url:
            chain.append(
                PostgresResolver(
                    hooks.platform_database_url, hooks.resolve_query, timeout=hooks.db_timeout
                )
            )
        elif name == "api" and hooks.platform_api_url:
            chain.append(
                ApiResolver(
                    session,
                    hooks.platform_api_url.rstrip("/") + hooks.resolve_path,
                    timeout=hooks.http_timeout,
                    attempts=hooks.http_attempts,
                    breaker=breaker(settings, "platform_api"),
                )
            )
    return ResolverChain(chain)


def make_trait_lookup(settings: Settings) -> TraitLookup | None:
    """The pre-persist resolution of a not-yet-stored identity (``HOOKS_RESOLVE_TRAIT``)."""
    hooks = settings.hooks
    if not hooks.resolve_trait or not hooks.platform_database_url:
        return None
    resolver = PostgresResolver(
        hooks.platform_database_url,
        hooks.resolve_trait_query,
        timeout=hooks.db_timeout,
        name="postgres_trait",
    )
    return TraitLookup(hooks.resolve_trait, resolver)


def make_sync(
    settings: Settings, admin_session: ClientSession, chain: ResolverChain
) -> IdentitySync:
    admin = KratosAdmin(
        admin_session,
        settings.kratos.admin_url,
        token=settings.kratos.admin_token,
        timeout=settings.hooks.http_timeout,
        breaker=breaker(settings, "kratos_admin"),
    )
    keys = MetadataKeys(settings.hooks.metadata_user_key, settings.hooks.metadata_agent_key)
    return IdentitySync(chain, admin, keys, make_trait_lookup(settings))


# --- one cleanup_ctx per resource -------------------------------------------------------------


async def outbox_context(app: web.Application) -> AsyncIterator[None]:
    outbox = make_outbox(app[SETTINGS])
    await outbox.start()
    app[OUTBOX] = outbox
    yield
    await outbox.close()


async def publisher_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    publisher = await Publisher.started(settings)
    app[PUBLISHER] = publisher
    yield
    if publisher is not None:
        await publisher.close()


def make_deliveries(settings: Settings, outbox: Outbox, publisher: Publisher | None) -> Deliveries:
    hooks = settings.hooks
    return Deliveries(
        outbox,
        publisher,
        confirm_timeout=hooks.confirm_timeout,
        lease=hooks.outbox_lease,
        patience=hooks.publish_timeout,
        max_backoff=hooks.relay_max_backoff,
    )


async def deliveries_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    deliveries = make_deliveries(settings, app[OUTBOX], app[PUBLISHER])
    app[DELIVERIES] = deliveries
    yield
    # A publish still out gets to learn its outcome (a late confirm) before the connection
    # closes; what stays unknown is left claimed, and published again after the lease.
    await deliveries.close(min(settings.server.shutdown_timeout, settings.hooks.confirm_timeout))


async def resolvers_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    chain = make_resolvers(settings, app[PLATFORM_SESSION])
    app[RESOLVERS] = chain
    app[SYNC] = make_sync(settings, app[ADMIN_SESSION], chain)
    app[RESERVATIONS] = Reservations(
        app[REDIS], settings.store.redis_key_prefix, settings.hooks.once_retention
    )
    yield
    await app[SYNC].close()


async def background_context(app: web.Application) -> AsyncIterator[None]:
    """Work that outlived a hook's budget: given a moment to finish at shutdown."""
    tasks: set[asyncio.Task[object]] = set()
    app[BACKGROUND] = tasks
    yield
    pending = list(tasks)
    if pending:
        await asyncio.wait(pending, timeout=app[SETTINGS].server.shutdown_timeout)
        for task in pending:
            task.cancel()


async def relay_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    hooks = settings.hooks
    relay = Relay(
        app[OUTBOX],
        app[DELIVERIES],
        app[SYNC],
        interval=hooks.relay_interval,
        max_backoff=hooks.relay_max_backoff,
        retention=hooks.once_retention,
    )
    app[RELAY] = relay
    task = asyncio.create_task(relay.run(), name="kratos-hooks-outbox-relay")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- readiness probes -------------------------------------------------------------------------


def _probes(app: web.Application, health: Health) -> None:
    async def broker() -> dict[str, Any]:
        publisher = app.get(PUBLISHER)
        if publisher is None:
            return {"status": "embedded", "note": "RABBITMQ_URL unset: events wait in the outbox"}
        return publisher.report()

    async def outbox() -> dict[str, Any]:
        box = app[OUTBOX]
        try:
            stats = await box.stats()
        except OutboxUnavailable as exc:
            return {"status": "down", "backend": box.backend, "error": str(exc)}
        publish_stats(stats)
        pending = stats.total
        report: dict[str, Any] = {
            "status": "degraded" if pending else "ok",
            "backend": box.backend,
            "pending": pending,
        }
        if stats.oldest_created_at is not None:
            report["oldest_age_s"] = round(time.time() - stats.oldest_created_at, 1)
        return report

    async def breakers() -> dict[str, Any]:
        sync = app[SYNC]
        states = {sync.admin.breaker.name: sync.admin.breaker.report()}
        for resolver in app[RESOLVERS].resolvers:
            states[resolver.name] = resolver.report()
        if sync.by_trait is not None:
            states[sync.by_trait.resolver.name] = sync.by_trait.resolver.report()
        degraded = any(s["status"] != "ok" for s in states.values())
        return {"status": "degraded" if degraded else "ok", **states}

    health.register("rabbitmq", broker)
    health.register("hooks_outbox", outbox)
    health.register("hooks_dependencies", breakers)


def notices_context(bus: Bus) -> Any:
    """Token notices (TOKEN_LEAKED, TOKEN_EXPIRING) go to the outbox once it is there."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        bus.subscribe(TokenNotice, notices(app))
        yield

    return context


def install(app: web.Application, health: Health, bus: Bus | None = None) -> None:
    """The INTERNAL_FEATURES installer of the Kratos hooks."""
    settings = app[SETTINGS]
    if not settings.store.database_url and settings.server.workers > 1:
        log.warning(
            "WORKERS > 1 without DATABASE_URL: each worker keeps its own spool file and its "
            "own once-per-identity memory; set DATABASE_URL (or REDIS_URL) to share them"
        )
    app.cleanup_ctx.append(outbox_context)
    app.cleanup_ctx.append(publisher_context)
    app.cleanup_ctx.append(deliveries_context)
    app.cleanup_ctx.append(session_context(ADMIN_SESSION, api_session))
    app.cleanup_ctx.append(session_context(PLATFORM_SESSION, api_session))
    app.cleanup_ctx.append(resolvers_context)
    app.cleanup_ctx.append(background_context)
    app.cleanup_ctx.append(relay_context)
    if bus is not None:
        app.cleanup_ctx.append(notices_context(bus))
    app.router.add_post("/hooks/kratos/verification", hook("verification", verification))
    app.router.add_post("/hooks/kratos/identity", hook("identity", identity))
    _probes(app, health)
