"""Typed application keys shared by the public and admin apps."""

from __future__ import annotations

from aiohttp import web

from .state import StandinState

STATE_KEY = web.AppKey("kratos_standin_state", StandinState)
APP_NAME_KEY = web.AppKey("kratos_standin_app_name", str)
