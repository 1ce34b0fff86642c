"""Typed keys of the state every feature may read: the settings, the listener, the shared
Redis client and health registry, and the per-request values the middleware and the access
log use. A feature declares its own keys in its own ``*_keys`` module."""

from __future__ import annotations

from aiohttp import ClientSession, web

from config.settings import Settings
from proxy.kernel.health_registry import Health
from proxy.kernel.hook_gate import HookGate
from proxy.kernel.redis import RedisClient
from proxy.kernel.view import RequestView

SETTINGS = web.AppKey("settings", Settings)
LISTENER = web.AppKey("listener", str)
HEALTH = web.AppKey("health", Health)
KRATOS_PUBLIC = web.AppKey("kratos_public_session", ClientSession)
REDIS: web.AppKey[RedisClient | None] = web.AppKey("redis")
HOOK_GATE = web.AppKey("hook_gate", HookGate)

REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_IP = web.RequestKey("client_ip", str)
ROUTE = web.RequestKey("route", str)
UPSTREAM_STATUS = web.RequestKey("upstream_status", int)
VIEW = web.RequestKey("view", RequestView)
