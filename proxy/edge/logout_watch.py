"""Logout closes the decision cache's window at once (hooked public routes).

The two Kratos logout endpoints are forwarded exactly like every other request; only when
Kratos confirms the logout (204 for the API, the session cookie cleared for browsers) is
``SessionEnded`` announced on the bus — and awaited, so the decisions feature has purged the
session here, in Redis and on every replica *before* the answer reaches the client.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from proxy.kernel.bodies import SMALL_BODY
from proxy.kernel.bus import Bus, SessionEnded
from proxy.kernel.hooked import Hook, Hooked, HookTable, Reply

API_LOGOUT = "/self-service/logout/api"
BROWSER_LOGOUT = "/self-service/logout"


def token_from_body(body: bytes) -> str | None:
    """The ``session_token`` of an API logout body, if it is one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    token = document.get("session_token") if isinstance(document, dict) else None
    return token if isinstance(token, str) and token else None


def clears_cookie(set_cookies: Sequence[str], name: str) -> bool:
    """Whether Kratos' answer deletes the session cookie (its sign of a completed logout)."""
    for header in set_cookies:
        first, _, attributes = header.partition(";")
        cookie_name, _, value = first.partition("=")
        if cookie_name.strip() != name:
            continue
        attrs = attributes.lower().replace(" ", "")
        if not value.strip() or "max-age=0" in attrs or "max-age=-" in attrs:
            return True
    return False


def api_logout(bus: Bus) -> Hook:
    async def hook(request: Hooked) -> Reply:
        body = await request.read(SMALL_BODY)  # a token; forwarded as it came
        token = token_from_body(body)
        answer = await request.forward(body)
        if answer.status == 204 and token:
            await bus.publish(SessionEnded(token))
        return Reply.relay(answer)

    return hook


def browser_logout(bus: Bus, cookie_name: str) -> Hook:
    async def hook(request: Hooked) -> Reply:
        cookie = request.cookie(cookie_name)
        answer = await request.forward(None)
        if cookie and clears_cookie(answer.headers.getall("Set-Cookie", ()), cookie_name):
            await bus.publish(SessionEnded(cookie))
        return Reply.relay(answer)

    return hook


def install_logout_watch(hooks: HookTable, bus: Bus, cookie_name: str) -> None:
    hooks.add("DELETE", API_LOGOUT, api_logout(bus))
    hooks.add("GET", BROWSER_LOGOUT, browser_logout(bus, cookie_name))
