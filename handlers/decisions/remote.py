"""The remote status-code authorizer (the registry ADR's webhook protocol).

``GET <url>`` with no body, redirects off, the webhook's own timeout, its bearer / basic /
mTLS credentials, and the context in headers: the original request's ``X-Forwarded-*``, the
caller's ``X-Registry-*``, the identity headers and the configured ``forward_headers``. Any
2xx allows; every other status, a timeout or a network error denies — always fail-closed.

HTTP answers are cached per (webhook, identity, request, forwarded values) for the webhook's
``cache_ttl_s``; a timeout or connection error is not cached (it says nothing about the
request, and the next decision should try again).
"""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping

import aiohttp
import orjson
from aiohttp import ClientSession, ClientTimeout
from multidict import CIMultiDict, CIMultiDictProxy

from handlers.decisions.decision_metrics import REMOTE
from handlers.decisions.identity_headers import identity_headers
from handlers.decisions.request import OriginalRequest
from handlers.decisions.rules import Webhook
from handlers.decisions.subject import Subject
from proxy.kernel.digests import sha256_hex

log = logging.getLogger("kratos_hooks.decisions")

CACHE_SIZE = 10000


def webhook_headers(
    webhook: Webhook,
    original: OriginalRequest,
    subject: Subject,
    incoming: CIMultiDictProxy[str],
) -> CIMultiDict[str]:
    """The context headers sent to ``webhook`` (pure)."""
    out: CIMultiDict[str] = CIMultiDict()
    out["X-Forwarded-Method"] = original.method
    out["X-Forwarded-Proto"] = original.scheme
    out["X-Forwarded-Host"] = original.host
    out["X-Forwarded-Uri"] = original.uri
    out["X-Forwarded-For"] = original.client_ip
    for name, value in original.registry.items():
        out[name] = value
    for name, value in identity_headers(subject).items():
        out[name] = value
    for name in webhook.forward_headers:
        for value in incoming.getall(name, ()):
            out.add(name, value)
    if webhook.bearer_token:
        out["Authorization"] = f"Bearer {webhook.bearer_token}"
    elif webhook.basic_auth is not None:
        pair = ":".join(webhook.basic_auth).encode()
        out["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return out


def cache_key(webhook: Webhook, subject: Subject, headers: Mapping[str, str]) -> str:
    """(webhook, identity, request) — everything the webhook was shown except its own secret."""
    shown = sorted((k.lower(), v) for k, v in headers.items() if k.lower() != "authorization")
    raw = orjson.dumps([webhook.name, webhook.url, subject.id, shown])
    return sha256_hex(raw)


class RemoteAuthorizer:
    def __init__(self, session: ClientSession) -> None:
        self._session = session
        self._cache: OrderedDict[str, tuple[float, bool]] = OrderedDict()

    def _cached(self, key: str) -> bool | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        expires, allowed = hit
        if expires <= time.monotonic():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return allowed

    def _remember(self, key: str, allowed: bool, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[key] = (time.monotonic() + ttl, allowed)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    async def allows(
        self,
        webhook: Webhook,
        original: OriginalRequest,
        subject: Subject,
        incoming: CIMultiDictProxy[str],
    ) -> bool:
        headers = webhook_headers(webhook, original, subject, incoming)
        key = cache_key(webhook, subject, headers)
        cached = self._cached(key)
        if cached is not None:
            REMOTE.labels(webhook.name, "cached_allow" if cached else "cached_deny").inc()
            return cached
        try:
            async with self._session.get(
                webhook.url,
                headers=headers,
                allow_redirects=False,
                timeout=ClientTimeout(total=webhook.timeout),
                ssl=webhook.ssl_context if webhook.ssl_context is not None else True,
            ) as response:
                allowed = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            REMOTE.labels(webhook.name, "deny").inc()
            log.warning(
                "authorization webhook failed: denying",
                extra={"webhook": webhook.name, "error": type(exc).__name__},
            )
            return False
        self._remember(key, allowed, webhook.cache_ttl)
        REMOTE.labels(webhook.name, "allow" if allowed else "deny").inc()
        return allowed
