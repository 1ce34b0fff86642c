"""Typed app keys of the hooks feature (one per resource its cleanup_ctx makes)."""

from __future__ import annotations

import asyncio

from aiohttp import ClientSession, web

from handlers.hooks.delivery import Deliveries
from handlers.hooks.outbox import Outbox
from handlers.hooks.publisher import Publisher
from handlers.hooks.relay import Relay
from handlers.hooks.reservation import Reservations
from handlers.hooks.resolvers import ResolverChain
from handlers.hooks.sync import IdentitySync

OUTBOX: web.AppKey[Outbox] = web.AppKey("hooks_outbox")
PUBLISHER: web.AppKey[Publisher | None] = web.AppKey("hooks_publisher")
DELIVERIES = web.AppKey("hooks_deliveries", Deliveries)
RESERVATIONS = web.AppKey("hooks_reservations", Reservations)
ADMIN_SESSION = web.AppKey("hooks_kratos_admin_session", ClientSession)
PLATFORM_SESSION = web.AppKey("hooks_platform_session", ClientSession)
RESOLVERS = web.AppKey("hooks_resolvers", ResolverChain)
SYNC = web.AppKey("hooks_identity_sync", IdentitySync)
RELAY = web.AppKey("hooks_relay", Relay)
BACKGROUND: web.AppKey[set[asyncio.Task[object]]] = web.AppKey("hooks_background")
