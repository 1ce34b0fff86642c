"""The service's outgoing HTTP clients: one ``ClientSession`` per upstream, each made and
closed by its own ``cleanup_ctx``, none of them changing what it carries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector, web

from config.settings import Settings
from proxy.kernel.breaker import CircuitBreaker
from proxy.kernel.kernel_keys import SETTINGS

# aiohttp would otherwise add headers the client never sent.
NO_AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")


def upstream_session(settings: Settings, *, pool_size: int | None = None) -> ClientSession:
    """Kratos' public API: pooled, keep-alive, no cookie jar, no decompression, no headers
    of its own — it carries the client's request as it came."""
    proxy = settings.proxy
    connector = TCPConnector(
        limit=pool_size or proxy.pool_size,
        limit_per_host=pool_size or proxy.pool_size,
        keepalive_timeout=proxy.keepalive_timeout,
        ttl_dns_cache=30,
    )
    return ClientSession(
        connector=connector,
        cookie_jar=DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=NO_AUTO_HEADERS,
        timeout=ClientTimeout(
            total=None, sock_connect=proxy.connect_timeout, sock_read=proxy.read_timeout
        ),
        trust_env=False,
    )


def api_session(settings: Settings, pool_size: int = 16) -> ClientSession:
    """An API the hooks call (Kratos admin, the platform): bounded per call by the caller,
    as a whole by four attempts' worth of ``HOOKS_HTTP_TIMEOUT``."""
    return ClientSession(
        connector=TCPConnector(limit=pool_size, keepalive_timeout=15),
        cookie_jar=DummyCookieJar(),
        timeout=ClientTimeout(total=max(1.0, settings.hooks.http_timeout * 4)),
        trust_env=False,
    )


def breaker(settings: Settings, name: str) -> CircuitBreaker:
    hooks = settings.hooks
    return CircuitBreaker(name, hooks.breaker_failures, hooks.breaker_cooldown)


def session_context(
    key: web.AppKey[ClientSession], make: Callable[[Settings], ClientSession]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The ``cleanup_ctx`` of one session: made at start-up into ``app[key]``, closed last."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[key] = make(app[SETTINGS])
        yield
        await app[key].close()

    return context
