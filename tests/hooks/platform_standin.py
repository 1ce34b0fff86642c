"""A stand-in for the platform server's identity resolution endpoint (INTEGRATIONS.md):
``POST /rest/internal/identity/resolve`` ``{"authenticationId"}`` → 200 ids / 404."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson
from aiohttp import web

RESOLVE_PATH = "/rest/internal/identity/resolve"


@dataclass
class PlatformState:
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Answer this status (instead of the real answer) to the next N calls.
    fail_status: int = 503
    fail_next: int = 0
    calls: int = 0
    delay: float = 0.0  # seconds each answer takes


STATE = web.AppKey("platform_state", PlatformState)


async def resolve(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.calls += 1
    if state.delay:
        await asyncio.sleep(state.delay)
    if state.fail_next > 0:
        state.fail_next -= 1
        return web.json_response({"message": "unavailable"}, status=state.fail_status)
    body = orjson.loads(await request.read())
    found = state.users.get(str(body.get("authenticationId")))
    if found is None:
        return web.json_response({"message": "not found"}, status=404)
    return web.json_response({"userId": found[0], "agentId": found[1]})


def create_platform_app(state: PlatformState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post(RESOLVE_PATH, resolve)
    return app
