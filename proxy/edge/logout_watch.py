"""Logout closes the decision cache's window at once (a ``PUBLIC_FEATURES`` installer).

The two Kratos logout endpoints are forwarded exactly like every other request; only when
Kratos confirms the logout (204 for the API, the session cookie cleared for browsers) is the
session's cache entry purged — in this process, in Redis and, by pub/sub, on every replica —
*before* the answer reaches the client, so the next decision already sees it logged out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from aiohttp import web

from handlers.decisions.authenticators import cookie_value
from handlers.decisions.purge import publish_purge
from handlers.decisions.session_cache import credential_key
from proxy.kernel.bodies import SMALL_BODY, read_bounded
from proxy.kernel.kernel_keys import FORWARDER, REDIS, SETTINGS
from proxy.kernel.logs import fingerprint
from proxy.kernel.view import HookTable

log = logging.getLogger("kratos_hooks.proxy")

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


async def _purge(request: web.Request, secret: str) -> None:
    settings = request.app[SETTINGS]
    key = credential_key(secret)
    await publish_purge(
        request.app[REDIS], settings.store.redis_key_prefix, key, settings.decisions.cache_ttl
    )
    log.info("session cache purged after logout", extra={"credential": fingerprint(secret)})


async def api_logout(request: web.Request) -> web.StreamResponse:
    forwarder = request.app[FORWARDER]
    body = await read_bounded(request, SMALL_BODY)  # a token; the forwarder sends it again
    token = token_from_body(body)
    async with forwarder.exchange(request, body=body) as upstream:
        if upstream.status == 204 and token:
            await _purge(request, token)
        return await forwarder.relay(request, upstream)


async def browser_logout(request: web.Request) -> web.StreamResponse:
    forwarder = request.app[FORWARDER]
    name = request.app[SETTINGS].kratos.session_cookie
    cookie = cookie_value(request.headers.getall("Cookie", ()), name)
    async with forwarder.exchange(request) as upstream:
        if cookie and clears_cookie(upstream.headers.getall("Set-Cookie", ()), name):
            await _purge(request, cookie)
        return await forwarder.relay(request, upstream)


def install_logout_watch(app: web.Application, hooks: HookTable) -> None:
    hooks.add("DELETE", API_LOGOUT, api_logout)
    hooks.add("GET", BROWSER_LOGOUT, browser_logout)
