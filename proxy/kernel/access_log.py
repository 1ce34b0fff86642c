"""The access log: one structured line per request, never a header value.

Query strings are logged with the values of credential-bearing parameters masked (Kratos puts
logout tokens, one-time codes and session-token exchange codes in URLs). A parameter that
carries a URL (``return_to``) is kept, with its own query masked the same way: an app's
callback URL may hold a token of its own.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from proxy.kernel.kernel_keys import CLIENT_IP, REQUEST_ID, ROUTE, UPSTREAM_STATUS

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
        "apikey",
        "client_secret",
        "id_token",
        # Kratos' native-app session-token exchange: either code is half of a session.
        "init_code",
        "return_to_code",
    }
)
URL_QUERY = frozenset({"return_to", "redirect_to", "redirect_uri", "return_url", "next"})
MASK = "***"


def _redact_url(value: str, depth: int) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed "[" host: nothing to keep, and never raise here
        return MASK
    if not parts.query and "@" not in parts.netloc:
        return value
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = _redact(parts.query, depth + 1)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact(query: str, depth: int) -> str:
    if not query:
        return ""
    out: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        lowered = name.lower()
        if lowered in SENSITIVE_QUERY or (lowered in URL_QUERY and depth >= 2):
            value = MASK
        elif lowered in URL_QUERY:
            value = _redact_url(value, depth)
        out.append((name, value))
    return urlencode(out)


def redact_query(query: str) -> str:
    """``query`` with every sensitive parameter's value replaced by ``***``."""
    return _redact(query, 0)


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
