"""The guard's typed app state."""

from __future__ import annotations

from aiohttp import web

from proxy.guard.core import Guard

GUARD = web.AppKey("login_guard", Guard)
