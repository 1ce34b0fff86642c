"""The streaming forwarder: every public request goes to Kratos as it came, bytes untouched.

Neither body is ever held whole: the request body is handed to the upstream as an async
iterator over the client's stream, the response is relayed chunk by chunk. Path and query go
out byte-for-byte as received (``raw_path``), so ``%2F``, ``..`` and parameter order reach
Kratos exactly as the client wrote them.

Failures are translated in one place (``_exchange``): cannot connect → 502, no answer in
time → 504, both before any byte was sent to the client. A failure after the response
started cannot change the status any more, so the client connection is aborted instead —
a truncated body must never look complete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import aiohttp
from aiohttp import ClientResponse, ClientSession, ClientTimeout, web
from multidict import CIMultiDict
from yarl import URL

from config.settings import Settings
from proxy.edge.headers import downstream_response_headers, upstream_request_headers
from proxy.kernel.client_ip import client_ip, parse_ip
from proxy.kernel.errors import ClientGone, UpstreamTimeout, UpstreamUnavailable
from proxy.kernel.http_metrics import UPSTREAM_ERRORS, UPSTREAM_LATENCY
from proxy.kernel.kernel_keys import (
    CLIENT_IP,
    KRATOS_PUBLIC,
    REQUEST_ID,
    ROUTE,
    UPSTREAM_STATUS,
    VIEW,
)
from proxy.kernel.view import RequestView, view_of

log = logging.getLogger("kratos_hooks.proxy")

STREAM_CHUNK: Final = 64 * 1024
_IDENTITY = web.RequestKey("client_identity", tuple[str, str, bool])


class Forwarder:
    """Sends a request to Kratos' public API and relays the answer."""

    def __init__(self, settings: Settings) -> None:
        base = URL(settings.kratos.public_url)
        self._origin = f"{base.scheme}://{base.raw_authority}"
        self._base_path = base.raw_path.rstrip("/")
        self.origin = self._origin + self._base_path  # Kratos' public API, raw paths follow
        self._upstream_host = None if settings.proxy.preserve_host else base.raw_authority
        self._prefix = settings.proxy.path_prefix
        self._trusted = settings.server.trusted_proxies
        proxy = settings.proxy
        self._timeout = ClientTimeout(
            total=proxy.total_timeout or None,
            sock_connect=proxy.connect_timeout,
            sock_read=proxy.read_timeout,
        )

    def view(self, request: web.BaseRequest) -> RequestView:
        """The request's canonical view, computed once (``dispatch.view_of``)."""
        view = request.get(VIEW)
        if view is None:
            view = request[VIEW] = view_of(request.raw_path, self._prefix)
        return view

    def target(self, request: web.BaseRequest) -> URL:
        """The upstream URL: the raw target after the prefix, never re-encoded."""
        return URL(self._origin + self._base_path + self.view(request).raw, encoded=True)

    def identify(self, request: web.BaseRequest) -> tuple[str, str, bool]:
        """(client ip, socket peer, whether the peer is a trusted proxy), computed once per
        request: the guard's buckets and the forwarded headers read the same answer."""
        known: tuple[str, str, bool] | None = request.get(_IDENTITY)
        if known is not None:
            return known
        peer = request.remote or ""
        if not self._trusted and not peer.startswith("::ffff:"):
            known = (peer, peer, False)  # the common, fast case: nobody speaks for the client
        else:
            peer_ip = parse_ip(peer)
            trusted = peer_ip is not None and any(peer_ip in net for net in self._trusted)
            ip = client_ip(
                peer,
                request.headers.getall("X-Forwarded-For", ()),
                request.headers.get("True-Client-IP"),
                self._trusted,
            )
            known = (ip, str(peer_ip) if peer_ip is not None else peer, trusted)
        request[_IDENTITY] = known
        request[CLIENT_IP] = known[0]
        return known

    def upstream_headers(self, request: web.BaseRequest) -> CIMultiDict[str]:
        """The headers a request to Kratos on behalf of ``request`` carries."""
        ip, peer, trusted = self.identify(request)
        return upstream_request_headers(
            request.headers,
            client_ip=ip,
            peer_ip=peer,
            trusted_peer=trusted,
            scheme=request.scheme,
            request_id=request[REQUEST_ID],
            upstream_host=self._upstream_host,
        )

    @asynccontextmanager
    async def exchange(
        self, request: web.Request, body: bytes | None = None
    ) -> AsyncIterator[ClientResponse]:
        """Open the upstream exchange for ``request``; ``body`` replaces a consumed stream."""
        url = self.target(request)
        route = request[VIEW].label
        request[ROUTE] = route
        headers = self.upstream_headers(request)
        data: object = body
        if body is None and request.body_exists:
            data = request.content.iter_chunked(STREAM_CHUNK)
        session = request.app[KRATOS_PUBLIC]
        started = time.perf_counter()
        async with _exchange(session, request, url, headers, data, self._timeout) as upstream:
            UPSTREAM_LATENCY.labels(route).observe(time.perf_counter() - started)
            request[UPSTREAM_STATUS] = upstream.status
            yield upstream

    async def relay(
        self, request: web.Request, upstream: ClientResponse, head: bytes = b""
    ) -> web.StreamResponse:
        """Stream ``upstream`` to the client as it arrives; ``head`` is the part of its body
        already read (by a hooked route that looked at the answer)."""
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=downstream_response_headers(upstream.headers),
        )
        response.headers.setdefault("X-Request-ID", request[REQUEST_ID])
        await response.prepare(request)
        try:
            if head:
                await response.write(head)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            UPSTREAM_ERRORS.labels("client_disconnect").inc()
            log.info("client went away during the response")
            return response
        except (aiohttp.ClientError, TimeoutError) as exc:
            UPSTREAM_ERRORS.labels("reset").inc()
            log.warning("upstream failed mid-response", extra={"error": type(exc).__name__})
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        async with self.exchange(request) as upstream:
            return await self.relay(request, upstream)


@asynccontextmanager
async def _exchange(
    session: ClientSession,
    request: web.Request,
    url: URL,
    headers: CIMultiDict[str],
    data: object,
    timeout: ClientTimeout,
) -> AsyncIterator[ClientResponse]:
    try:
        async with session.request(
            request.method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=timeout,
        ) as upstream:
            yield upstream
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
        transport = request.transport
        if transport is None or transport.is_closing():
            UPSTREAM_ERRORS.labels("client_disconnect").inc()
            raise ClientGone() from exc
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            UPSTREAM_ERRORS.labels("timeout").inc()
            log.warning("upstream timed out", extra={"url_path": url.raw_path})
            raise UpstreamTimeout() from exc
        UPSTREAM_ERRORS.labels("connect").inc()
        log.warning(
            "upstream unreachable", extra={"url_path": url.raw_path, "error": type(exc).__name__}
        )
        raise UpstreamUnavailable() from exc
