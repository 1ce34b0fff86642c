"""Wiring the decisions feature into the internal app (an ``INTERNAL_FEATURES`` installer).

One cleanup_ctx per resource: the webhook HTTP pool and the decider (rules loaded — a broken
file stops start-up — and watched). Who a session is comes from the kernel's ``Sessions``
(its cache, its whoami pool, its logout purges: shared with the token page), and whether a
token is valid from the ``TokenVerifier`` the composition root hands over (the credentials
feature's; None when tokens are off).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import ClientSession, DummyCookieJar, TCPConnector, web

from handlers.decisions.authenticators import (
    Anonymous,
    Authenticator,
    SessionCookie,
    SessionToken,
    Token,
)
from handlers.decisions.decision_keys import DECIDER, RULES, WEBHOOK_HTTP
from handlers.decisions.endpoint import ENDPOINT, Decider, handle
from handlers.decisions.reload import RulesHolder
from handlers.decisions.remote import RemoteAuthorizer
from handlers.decisions.request import ProxyTrust
from handlers.decisions.rule_limits import RateLimiter
from proxy.kernel.health_registry import Health
from proxy.kernel.kernel_keys import REDIS, SETTINGS
from proxy.kernel.sessions import Sessions
from proxy.kernel.tokens import TokenVerifier

log = logging.getLogger("kratos_hooks.decisions")


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


def _decider(sessions: Sessions, tokens: TokenVerifier | None) -> Any:
    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        config = settings.decisions
        cache = sessions.cache
        if tokens is None and any("token" in r.authenticators for r in app[RULES].current.rules):
            log.warning("TOKENS_ENABLED is off: rules accepting tokens answer 503 to them")
        authenticators: dict[str, Authenticator] = {
            "anonymous": Anonymous(),
            "session_cookie": SessionCookie(cache, sessions.cookie_name, config.roles_path),
            "session_token": SessionToken(cache, config.roles_path),
            "token": Token(tokens, settings.tokens.header),
        }
        app[DECIDER] = Decider(
            settings=config,
            trust=ProxyTrust(settings.server.trusted_proxies),
            rules=app[RULES],
            authenticators=authenticators,
            cache=cache,
            remote=RemoteAuthorizer(app[WEBHOOK_HTTP]),
            limiter=RateLimiter(lambda: app[REDIS], settings.store.redis_key_prefix),
            tokens=tokens,
        )
        yield

    return context


def _rules_probe(app: web.Application) -> Any:
    async def probe() -> dict[str, Any]:
        decider = app.get(DECIDER)
        if decider is None:
            return {"status": "down", "error": "not started"}
        return {"status": "ok", "rules": len(decider.rules.current.rules)}

    return probe


def install_decisions(
    app: web.Application, health: Health, sessions: Sessions, tokens: TokenVerifier | None
) -> None:
    # First of all: a broken rules file must stop start-up before any resource is opened
    # (aiohttp does not unwind the contexts entered before a failing one).
    app.cleanup_ctx.insert(0, _rules)
    app.cleanup_ctx.append(_webhook_http)
    app.cleanup_ctx.append(_decider(sessions, tokens))
    app.router.add_route("*", ENDPOINT, handle)
    app.router.add_route("*", ENDPOINT + "/{tail:.*}", handle)
    health.register("decisions_rules", _rules_probe(app))
