"""The access log: one structured line per request, never a header value.

Query strings are logged with the values of credential-bearing parameters masked (Kratos puts
logout tokens and one-time codes in URLs).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from proxy.keys import CLIENT_IP, REQUEST_ID, ROUTE, UPSTREAM_STATUS

SENSITIVE_QUERY = frozenset(
    {
        "token",
        "code",
        "session_token",
        "access_token",
        "refresh_token",
        "api_key",
        "password",
        "secret",
        "key",
    }
)


def redact_query(query: str) -> str:
    """``query`` with every sensitive parameter's value replaced by ``***``."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in SENSITIVE_QUERY else v) for k, v in pairs])


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
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
