"""The access log: one structured line per request, never a header value — on both listeners.

Query strings are logged with the values of credential-bearing parameters masked (Kratos puts
logout tokens, one-time codes and session-token exchange codes in URLs). A parameter that
carries a URL (``return_to``) is kept, with its own query masked the same way: an app's
callback URL may hold a token of its own.

When the process logs JSON lines to one stream (``logs.configure`` with ``LOG_FORMAT=json``,
the default) a line is built in exactly the shape ``JsonFormatter`` gives that record and
appended to ``AccessLines``, written in batches: no ``logging`` record, no handler lock, no
system call per request — the default JSON access log through ``logging`` cost about a
quarter of a proxied GET and half of a cached decision. Anywhere else (``LOG_FORMAT=console``,
a test capturing records, an embedding app's own handlers) each line goes through ``logging``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import orjson

from config.redact import mask_url_credentials
from proxy.kernel.logs import JsonFormatter

ACCESS = logging.getLogger("kratos_hooks.access")

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


_MASKED_NAMES = SENSITIVE_QUERY | URL_QUERY


def logged_query(query: str) -> str:
    """``redact_query(query)``, skipping the parse when no parameter could need a mask."""
    if not query:
        return ""
    if "%" not in query and "+" not in query:
        names = {part.partition("=")[0].lower() for part in query.split("&")}
        if names.isdisjoint(_MASKED_NAMES):
            return query
    return redact_query(query)


def logged_path(target: str) -> str:
    """The percent-decoded path of a raw target (what aiohttp's ``request.path`` gives)."""
    path = target.partition("?")[0]
    return unquote(path) if "%" in path else path


def json_stream() -> IO[bytes] | None:
    """The byte stream JSON log lines go to, when the process is set up that way (one
    ``StreamHandler`` with ``JsonFormatter`` on the root logger, ``logs.configure``)."""
    root = logging.getLogger()
    if ACCESS.handlers or not ACCESS.propagate or len(root.handlers) != 1:
        return None
    handler = root.handlers[0]
    if type(handler) is not logging.StreamHandler:
        return None
    if not isinstance(handler.formatter, JsonFormatter) or handler.filters:
        return None
    raw: IO[bytes] | None = getattr(handler.stream, "buffer", None)
    return raw


# The line ``JsonFormatter`` writes for an access record, with the same keys in the same
# order. Only the path and the query can hold characters JSON must escape: those two go
# through orjson; the rest are validated tokens (request id, method), addresses, route
# labels of a fixed vocabulary and numbers.
_LINE = (
    b'{"ts":"%s.%03dZ","level":"info","logger":"kratos_hooks.access","msg":"access",'
    b'"request_id":"%s","method":"%s","path":%s,"query":%s,"status":%d,%s'
    b'"route":"%s","client_ip":"%s","bytes_sent":%d,"latency_ms":%s}'
)

# Buffered lines are written every FLUSH_SECONDS or once FLUSH_BYTES are waiting, whichever
# comes first: one write per loop turn was still a system call every one or two requests
# under load (about 10 µs per request, a quarter of a proxied GET). At most this much of the
# log is lost if the process is killed; a clean stop flushes it.
FLUSH_SECONDS = 0.05
FLUSH_BYTES = 64 * 1024


def record_fields(
    request_id: str,
    method: str,
    path: str,
    query: str,
    status: int,
    upstream_status: int | None,
    route: str,
    client_ip: str,
    bytes_sent: int,
    elapsed: float,
) -> dict[str, Any]:
    """The access record's extra fields, for the ``logging`` path."""
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "query": logged_query(query),
        "status": status,
    }
    if upstream_status:
        fields["upstream_status"] = upstream_status
    fields.update(
        route=route, client_ip=client_ip, bytes_sent=bytes_sent, latency_ms=round(elapsed * 1000, 3)
    )
    return fields


class AccessLines:
    """The access lines of one process, buffered and written in batches — or, when the log is
    not one JSON stream (``json_stream``), through ``logging`` line by line."""

    def __init__(self) -> None:
        self.stream = json_stream()
        self._lines: list[bytes] = []
        self._size = 0
        self._second = -1
        self._stamp = b""
        self._loop = asyncio.get_running_loop()

    def add(
        self,
        request_id: str,
        method: str,
        path: str,
        query: str,
        status: int,
        upstream_status: int | None,
        route: str,
        client_ip: str,
        bytes_sent: int,
        elapsed: float,
    ) -> None:
        """Log one request (``path`` decoded, ``query`` raw — it is masked here). The public
        listener passes the fields by position: no dictionary per request."""
        if not ACCESS.isEnabledFor(logging.INFO):  # cached by logging: a dict look-up
            return
        fields = (request_id, method, path, query, status, upstream_status, route, client_ip,
                  bytes_sent, elapsed)  # fmt: skip
        if self.stream is None:
            ACCESS.info("access", extra=record_fields(*fields))
            return
        line = self.line(time.time(), *fields)
        lines = self._lines
        if not lines:
            self._loop.call_later(FLUSH_SECONDS, self.flush)
        lines.append(line)
        self._size += len(line)
        if self._size > FLUSH_BYTES:
            self.flush()

    def line(
        self,
        now: float,
        request_id: str,
        method: str,
        path: str,
        query: str,
        status: int,
        upstream_status: int | None,
        route: str,
        client_ip: str,
        bytes_sent: int,
        elapsed: float,
    ) -> bytes:
        """The JSON line ``JsonFormatter`` writes for these fields' access record."""
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        upstream = b'"upstream_status":%d,' % upstream_status if upstream_status else b""
        query = logged_query(query)
        return _LINE % (
            self._stamp,
            int((now - second) * 1000),
            request_id.encode("latin-1", "replace"),
            method.encode("latin-1", "replace"),
            orjson.dumps(mask_url_credentials(path) if "@" in path else path),
            orjson.dumps(mask_url_credentials(query) if "@" in query else query),
            status,
            upstream,
            route.encode("latin-1", "replace"),
            client_ip.encode("latin-1", "replace"),
            bytes_sent,
            b"%.3f" % (elapsed * 1000),  # the same number as round(…, 3), trailing zeros kept
        )

    def flush(self) -> None:
        lines = self._lines
        if not lines or self.stream is None:
            return
        self._lines = []
        self._size = 0
        lines.append(b"")
        try:
            logging.getLogger().handlers[0].flush()  # lines logged before these go first
            self.stream.write(b"\n".join(lines))
            self.stream.flush()
        except (OSError, ValueError, IndexError):
            pass  # as logging.Handler.handleError would: a broken log stream never stops us
