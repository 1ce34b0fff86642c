"""Typed app-state keys of the decisions feature (internal app)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import ClientSession, web

if TYPE_CHECKING:
    from handlers.decisions.endpoint import Decider
    from handlers.decisions.reload import RulesHolder

DECIDER: web.AppKey[Decider] = web.AppKey("decisions_decider")
RULES: web.AppKey[RulesHolder] = web.AppKey("decisions_rules")
# The remote authorizer's webhooks: a separate session (other hosts, other TLS settings).
WEBHOOK_HTTP = web.AppKey("decisions_webhook_http", ClientSession)
