"""The one middleware both listeners share: request id, errors as JSON, metrics.

Handlers raise ``KratosHooksError`` (or aiohttp's HTTP exceptions) and this renders them in
Kratos' error shape; anything unexpected is logged once, with its traceback, and answered
with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from proxy.kernel import request_ids
from proxy.kernel.errors import BadRequest, ClientGone, KratosHooksError, error_document, render
from proxy.kernel.http_metrics import HTTP_LATENCY, HTTP_REQUESTS, Counter, Histogram
from proxy.kernel.kernel_keys import LISTENER, REQUEST_ID, ROUTE
from proxy.kernel.logs import request_id_var

log = logging.getLogger("kratos_hooks.http")


def request_id_from(header: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token, else a fresh one.

    Fresh ids are a random per-process prefix and a counter: unique across replicas and
    restarts without a system call per request.
    """
    if header and request_ids.SANE.fullmatch(header):
        return header
    return request_ids.fresh()


def json_error(exc: KratosHooksError, request_id: str) -> web.Response:
    response = web.Response(
        status=exc.status, body=render(exc, request_id), content_type="application/json"
    )
    response.headers.update(exc.headers)
    return response


def _client_gone(exc: ClientGone, request_id: str) -> web.Response:
    """Nobody will read the answer: say so once, at INFO, and count a 499, not a 5xx."""
    log.info("client went away before the answer", extra={"status": exc.status})
    return json_error(exc, request_id)


def _from_http_exception(exc: web.HTTPException, request_id: str) -> web.StreamResponse:
    if exc.status < 400:
        return exc
    body = orjson.dumps(error_document(exc.status, reason=exc.reason, request_id=request_id))
    response = web.Response(status=exc.status, body=body, content_type="application/json")
    for name in ("Allow", "Location", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


_Children = tuple[Counter, Histogram]
_CHILDREN: dict[tuple[str, str, int], _Children] = {}


def _children(listener: str, route: str, status: int) -> _Children:
    """The labelled metric children, resolved once per label set (``labels()`` is costly)."""
    key = (listener, route, status)
    children = _CHILDREN.get(key)
    if children is None:
        labels = (listener, route, str(status))
        children = _CHILDREN[key] = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
    return children


class _Observe:
    """The request id, the metrics and the error shape of every internal request: aiohttp's
    new-style middleware as an object, because this module is compiled (``proxy.native``) and a
    compiled function cannot carry the marker ``web.middleware`` would set on it."""

    __middleware_version__: ClassVar[int] = 1

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        request[REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            try:
                if not request.raw_path.startswith("/"):
                    # Absolute form, authority form (CONNECT), ``*``: no route of ours or Kratos'
                    # is asked for that way, and an absolute URL would be routed by its path.
                    raise BadRequest("The request target must be an absolute path")
                response = await handler(request)
            except ConnectionResetError:
                if request.transport is not None and not request.transport.is_closing():
                    log.exception("unhandled error", extra={"path": request.path})
                    response = json_error(KratosHooksError(), request_id)
                else:  # the client hung up while its request was being read
                    response = _client_gone(ClientGone(), request_id)
            except ClientGone as exc:
                response = _client_gone(exc, request_id)
            except KratosHooksError as exc:
                response = json_error(exc, request_id)
            except web.HTTPException as exc:
                response = _from_http_exception(exc, request_id)
            except Exception:
                log.exception("unhandled error", extra={"path": request.path})
                response = json_error(KratosHooksError(), request_id)
            if not response.prepared:
                response.headers.setdefault("X-Request-ID", request_id)
            status = response.status
            return response
        finally:
            count, latency = _children(
                request.app[LISTENER], request.get(ROUTE, "unmatched"), status
            )
            count.inc()
            latency.observe(time.perf_counter() - started)
            request_id_var.reset(token)


observe = _Observe()
