"""The internal listener's access log: aiohttp's access logger onto ``access_log``'s lines.

Kept apart from ``access_log`` (compiled by mypyc, ``proxy.native``): aiohttp subclasses this
class per listener (``bound``), which a compiled class cannot be.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from proxy.kernel.access_log import AccessLines, redact_query
from proxy.kernel.kernel_keys import CLIENT_IP, REQUEST_ID, ROUTE, UPSTREAM_STATUS


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access logger of the internal listener, onto the process's ``AccessLines``
    (``bound``), else through ``logging``."""

    lines: ClassVar[AccessLines | None] = None

    @classmethod
    def bound(cls, lines: AccessLines) -> type[AccessLogger]:
        return type("BoundAccessLogger", (cls,), {"lines": lines})

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        lines = self.lines
        if lines is None:
            self._log(request, response, time)
            return
        lines.add(
            request_id=request.get(REQUEST_ID) or "",
            method=request.method,
            path=request.path,
            query=request.query_string,
            status=response.status,
            upstream_status=request.get(UPSTREAM_STATUS),
            route=request.get(ROUTE) or "unmatched",
            client_ip=request.get(CLIENT_IP) or request.remote or "",
            bytes_sent=response.body_length,
            elapsed=time,
        )

    def _log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        extra = {
            "request_id": request.get(REQUEST_ID),
            "method": request.method,
            "path": request.path,
            "query": redact_query(request.query_string),
            "status": response.status,
            "upstream_status": request.get(UPSTREAM_STATUS),
            "route": request.get(ROUTE),
            "client_ip": request.get(CLIENT_IP, request.remote),
            "bytes_sent": response.body_length,
            "latency_ms": round(time * 1000, 3),
        }
        self.logger.info("access", extra={k: v for k, v in extra.items() if v is not None})
