"""Typed keys for application and request state: every shared resource is declared here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from aiohttp import ClientSession, web

from config.settings import Settings

if TYPE_CHECKING:
    from handlers.health import Health
    from proxy.edge.forwarder import Forwarder
    from proxy.kernel.view import HookTable, RequestView

SETTINGS = web.AppKey("settings", Settings)
LISTENER = web.AppKey("listener", str)
HEALTH: web.AppKey[Health] = web.AppKey("health")
KRATOS_PUBLIC = web.AppKey("kratos_public_session", ClientSession)
FORWARDER: web.AppKey[Forwarder] = web.AppKey("forwarder")
REDIS: web.AppKey[aioredis.Redis | None] = web.AppKey("redis")
PUBLIC_HOOKS: web.AppKey[HookTable] = web.AppKey("public_hooks")

REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_IP = web.RequestKey("client_ip", str)
ROUTE = web.RequestKey("route", str)
UPSTREAM_STATUS = web.RequestKey("upstream_status", int)
VIEW: web.RequestKey[RequestView] = web.RequestKey("view")
