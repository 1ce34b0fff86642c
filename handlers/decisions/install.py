"""Wiring the decisions feature into the internal app (an ``INTERNAL_FEATURES`` installer).

One cleanup_ctx per resource: the whoami HTTP pool, the webhook HTTP pool, the decider (rules
loaded — a broken file stops start-up — and watched), and the Redis pub/sub listener that
hears logouts seen by any replica's edge proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector, web

from handlers.decisions.authenticators import Anonymous, Authenticator, SessionCookie, SessionToken
from handlers.decisions.decision_keys import DECIDER, RULES, WEBHOOK_HTTP, WHOAMI_HTTP
from handlers.decisions.endpoint import ENDPOINT, Decider, handle
from handlers.decisions.purge import Purger
from handlers.decisions.reload import RulesHolder
from handlers.decisions.remote import RemoteAuthorizer
from handlers.decisions.request import ProxyTrust
from handlers.decisions.rule_limits import RateLimiter
from handlers.decisions.session_cache import SessionCache
from handlers.decisions.whoami import WhoamiClient
from proxy.kernel.bus import Bus, SessionEnded
from proxy.kernel.health_registry import Health
from proxy.kernel.kernel_keys import REDIS, SETTINGS

log = logging.getLogger("kratos_hooks.decisions")


async def _whoami_http(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[WHOAMI_HTTP] = ClientSession(
        connector=TCPConnector(limit=100, keepalive_timeout=settings.proxy.keepalive_timeout),
        cookie_jar=DummyCookieJar(),
        timeout=ClientTimeout(total=settings.decisions.whoami_timeout),
        trust_env=False,
    )
    yield
    await app[WHOAMI_HTTP].close()


async def _webhook_http(app: web.Application) -> AsyncIterator[None]:
    app[WEBHOOK_HTTP] = ClientSession(
        connector=TCPConnector(limit=100),
        cookie_jar=DummyCookieJar(),
        trust_env=False,
    )
    yield
    await app[WEBHOOK_HTTP].close()


async def _rules(app: web.Application) -> AsyncIterator[None]:
    config = app[SETTINGS].decisions
    holder = RulesHolder(config.rules_file, config.reload_interval)
    await holder.load_initial()
    if holder.path and not app[SETTINGS].server.trusted_proxies:
        log.warning(
            "TRUSTED_PROXIES is empty: /decisions ignores every X-Forwarded-* and X-Original-* "
            "header, so only /decisions/<path> requests can match a rule; list your proxies"
        )
    app[RULES] = holder
    holder.start()
    yield
    await holder.stop()


async def _decider(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    config = settings.decisions
    prefix = settings.store.redis_key_prefix
    cache = SessionCache(
        WhoamiClient(app[WHOAMI_HTTP], settings.kratos.public_url, config.whoami_timeout),
        lambda: app[REDIS],
        prefix=prefix,
        ttl=config.cache_ttl,
        negative_ttl=config.negative_cache_ttl,
        size=config.cache_size,
    )
    authenticators: dict[str, Authenticator] = {
        "anonymous": Anonymous(),
        "session_cookie": SessionCookie(cache, settings.kratos.session_cookie, config.roles_path),
        "session_token": SessionToken(cache, config.roles_path),
    }
    app[DECIDER] = Decider(
        settings=config,
        trust=ProxyTrust(settings.server.trusted_proxies),
        rules=app[RULES],
        authenticators=authenticators,
        cache=cache,
        remote=RemoteAuthorizer(app[WEBHOOK_HTTP]),
        limiter=RateLimiter(lambda: app[REDIS], prefix),
    )
    yield


def _purge_listener(bus: Bus) -> Any:
    """Logouts the edge saw, and those other replicas publish, purge this process's cache."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        purger = Purger(
            app[DECIDER].cache,
            lambda: app[REDIS],
            settings.store.redis_key_prefix,
            settings.decisions.cache_ttl,
        )
        bus.subscribe(SessionEnded, purger.session_ended)
        client = app[REDIS]
        task = None
        if client is not None:
            task = asyncio.create_task(purger.listen(client), name="decisions-purge-listener")
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context


def _rules_probe(app: web.Application) -> Any:
    async def probe() -> dict[str, Any]:
        decider = app.get(DECIDER)
        if decider is None:
            return {"status": "down", "error": "not started"}
        return {"status": "ok", "rules": len(decider.rules.current.rules)}

    return probe


def install_decisions(app: web.Application, health: Health, bus: Bus) -> None:
    # First of all: a broken rules file must stop start-up before any resource is opened
    # (aiohttp does not unwind the contexts entered before a failing one).
    app.cleanup_ctx.insert(0, _rules)
    app.cleanup_ctx.append(_whoami_http)
    app.cleanup_ctx.append(_webhook_http)
    app.cleanup_ctx.append(_decider)
    app.cleanup_ctx.append(_purge_listener(bus))
    app.router.add_route("*", ENDPOINT, handle)
    app.router.add_route("*", ENDPOINT + "/{tail:.*}", handle)
    health.register("decisions_rules", _rules_probe(app))
