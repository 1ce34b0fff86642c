"""What each request leaves behind: two metric updates and one access line, both cheap.

Metrics are ``kernel.fast_metrics`` cells resolved once per label set. The access log keeps
the fields and redaction of ``kernel/access_log.py``. When the process logs JSON lines to
one stream (``logs.configure`` with ``LOG_FORMAT=json``, the default) the line is built with
orjson in exactly the shape ``JsonFormatter`` gives that record and appended to a buffer that
is written every 50 ms (or at 64 KiB): no ``logging`` record, no handler lock, no system
call per request (access lines can therefore trail other log lines by up to 50 ms).
Anywhere else (``LOG_FORMAT=console``, a test capturing records, an embedding app's own
handlers) each line goes through ``logging`` as before.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from proxy.kernel.access_log import AccessLines, logged_path
from proxy.kernel.http_metrics import HTTP_LATENCY, HTTP_REQUESTS, UPSTREAM_ERRORS, UPSTREAM_LATENCY
from proxy.kernel.view import RequestView

if TYPE_CHECKING:
    from proxy.edge.wire.exchange import Exchange

log = logging.getLogger("kratos_hooks.http")
ACCESS = logging.getLogger("kratos_hooks.access")


class Logged(Protocol):
    """What an access line reads of an exchange (an ``Exchange``; a test's stand-in)."""

    rid: bytes
    method: bytes
    target_text: str
    view: RequestView
    status: int
    upstream_status: int
    who_ip: bytes
    bytes_sent: int


def access_fields(ex: Logged, elapsed: float) -> dict[str, Any]:
    """The access line's fields of ``ex`` (as ``kernel.access_log.AccessLines.add`` takes them)."""
    return {
        "request_id": ex.rid.decode("latin-1"),
        "method": ex.method.decode("latin-1"),
        "path": logged_path(ex.target_text),
        "query": ex.view.query,
        "status": ex.status,
        "upstream_status": ex.upstream_status or None,
        "route": ex.view.label,
        "client_ip": ex.who_ip.decode("latin-1"),
        "bytes_sent": ex.bytes_sent,
        "elapsed": elapsed,
    }


class AccessLog:
    """The public listener's access lines, onto the process's ``AccessLines``."""

    def __init__(self, lines: AccessLines | None = None) -> None:
        self.lines = lines if lines is not None else AccessLines()

    def write(self, ex: Logged, elapsed: float) -> None:
        self.lines.add(  # ``access_fields`` by position: no dictionary per request
            ex.rid.decode("latin-1"),
            ex.method.decode("latin-1"),
            logged_path(ex.target_text),
            ex.view.query,
            ex.status,
            ex.upstream_status or None,
            ex.view.label,
            ex.who_ip.decode("latin-1"),
            ex.bytes_sent,
            elapsed,
        )

    def flush(self) -> None:
        self.lines.flush()


class Observer:
    """The public listener's metrics and access log."""

    def __init__(self, listener: str, access: AccessLog | None) -> None:
        self.listener = listener
        self.access = access
        self._cells: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._errors = {
            kind: UPSTREAM_ERRORS.labels(kind)
            for kind in ("connect", "timeout", "reset", "client_disconnect", "pool_timeout")
        }
        self._latency: dict[str, Any] = {}

    def _count(self, route: str, status: int, elapsed: float) -> None:
        cells = self._cells.get((route, status))
        if cells is None:
            labels = (self.listener, route, str(status))
            cells = self._cells[(route, status)] = (
                HTTP_REQUESTS.labels(*labels),
                HTTP_LATENCY.labels(*labels),
            )
        cells[0].count += 1
        cells[1].observe(elapsed)

    def record(self, ex: Exchange) -> None:
        if ex.ip_held:
            ex.client.listener.release_ip(ex)
        elapsed = time.perf_counter() - ex.started
        self._count(ex.view.label, ex.status or 500, elapsed)
        if self.access is not None:
            self.access.write(ex, elapsed)

    def client_gone(self, ex: Exchange) -> None:
        """Nobody will read the answer: one INFO line, a 499 unless the answer had begun."""
        if ex.resp is None:
            ex.status = 499
            log.info("client went away before the answer", extra={"status": 499})
        else:
            log.info("client went away during the response", extra={"status": ex.status})
        self._errors["client_disconnect"].count += 1
        self.record(ex)

    def refused(self, status: int) -> None:
        """A request refused before it had an exchange (malformed, too large, too slow)."""
        self._count("unmatched", status, 0.0)

    def upstream_error(self, kind: str) -> None:
        self._errors[kind].count += 1

    def upstream_latency(self, route: str, since: float) -> None:
        cell = self._latency.get(route)
        if cell is None:
            cell = self._latency[route] = UPSTREAM_LATENCY.labels(route)
        cell.observe(time.perf_counter() - since)

    def close(self) -> None:
        if self.access is not None:
            self.access.flush()
