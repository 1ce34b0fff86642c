"""``kernel.hooked.Hooked`` on aiohttp: a hooked public request, forwarded through the
``Forwarder`` and answered with its one relay. The public listener's dispatcher makes one per
hooked request and writes the hook's ``Reply``; features never see the aiohttp objects."""

from __future__ import annotations

import contextlib
import logging

from aiohttp import ClientError, ClientResponse, ClientTimeout, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy.edge.forwarder import Forwarder
from proxy.edge.headers import downstream_response_headers
from proxy.kernel.bodies import read_bounded
from proxy.kernel.cookies import cookie_value
from proxy.kernel.hooked import ANSWER_LIMIT, HookTable, Reply
from proxy.kernel.http_metrics import UPSTREAM_ERRORS
from proxy.kernel.kernel_keys import KRATOS_PUBLIC, REQUEST_ID
from proxy.kernel.view import RequestView

log = logging.getLogger("kratos_hooks.proxy")

FETCH_TIMEOUT = ClientTimeout(total=5)
# A GET made on the caller's behalf carries no body and asks for JSON.
_NOT_FETCHED = ("Content-Type", "Content-Length", "Content-Encoding", "Accept-Encoding")


class _Answer:
    __slots__ = ("body", "complete", "headers", "status", "upstream")

    def __init__(self, upstream: ClientResponse, body: bytes, complete: bool) -> None:
        self.upstream = upstream
        self.status = upstream.status
        self.headers = CIMultiDictProxy(downstream_response_headers(upstream.headers))
        self.body = body
        self.complete = complete


async def _read(upstream: ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the answer's body, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await upstream.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


class AiohttpHooked:
    """One hooked request; ``close()`` releases whatever it opened towards Kratos."""

    def __init__(self, request: web.Request, forwarder: Forwarder, view: RequestView) -> None:
        self._request = request
        self._forwarder = forwarder
        self._stack = contextlib.AsyncExitStack()
        self.view = view

    @property
    def method(self) -> str:
        return self._request.method

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._request.headers

    @property
    def client_ip(self) -> str:
        return self._forwarder.identify(self._request)[0]

    @property
    def request_id(self) -> str:
        return self._request[REQUEST_ID]

    def cookie(self, name: str) -> str | None:
        return cookie_value(self._request.headers.getall("Cookie", ()), name)

    async def read(self, limit: int, what: str = "The request body") -> bytes:
        return await read_bounded(self._request, limit, what)

    async def forward(self, body: bytes | None, *, limit: int = ANSWER_LIMIT) -> _Answer:
        upstream = await self._stack.enter_async_context(
            self._forwarder.exchange(self._request, body=body)
        )
        head, complete = await _read(upstream, limit)
        return _Answer(upstream, head, complete)

    async def fetch(
        self, path_qs: str, *, accept: str = "application/json", limit: int = ANSWER_LIMIT
    ) -> _Answer | None:
        headers = self._forwarder.upstream_headers(self._request)
        for name in _NOT_FETCHED:
            headers.popall(name, None)
        headers["Accept"] = accept
        url = URL(self._forwarder.origin + path_qs, encoded=True)
        session = self._request.app[KRATOS_PUBLIC]
        try:
            upstream = await self._stack.enter_async_context(
                session.get(url, headers=headers, allow_redirects=False, timeout=FETCH_TIMEOUT)
            )
            head, complete = await _read(upstream, limit)
        except (ClientError, TimeoutError) as exc:
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            UPSTREAM_ERRORS.labels(kind).inc()
            log.warning(
                "a fetch on the caller's behalf failed", extra={"error": type(exc).__name__}
            )
            return None
        return _Answer(upstream, head, complete)

    async def respond(self, reply: Reply) -> web.StreamResponse:
        answer = reply.answer
        if isinstance(answer, _Answer):
            return await self._forwarder.relay(self._request, answer.upstream, answer.body)
        headers = CIMultiDict(reply.headers)
        headers.setdefault("X-Request-ID", self.request_id)
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    async def close(self) -> None:
        await self._stack.aclose()


def dispatcher(forwarder: Forwarder, hooks: HookTable) -> Handler:
    """The public listener's one handler: a hooked route's feature, else the forwarder."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        view = forwarder.view(request)
        hook = hooks.get(request.method, view)
        if hook is None:
            return await forwarder.handle(request)
        hooked = AiohttpHooked(request, forwarder, view)
        try:
            return await hooked.respond(await hook(hooked))
        finally:
            await hooked.close()

    return dispatch
