"""The public listener's buffered access line is the line ``JsonFormatter`` would write for
the access record of the same request: same keys, same order, same values, same masking."""

from __future__ import annotations

import io
import logging
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from proxy.edge.wire.observe import AccessLog, access_fields
from proxy.kernel.access_log import AccessLines, logged_query, record_fields, redact_query
from proxy.kernel.logs import JsonFormatter
from proxy.kernel.view import view_of


def exchange(target: str, **overrides: Any) -> Any:
    fields = {
        "target_text": target,
        "view": view_of(target, ""),
        "rid": b"abc-123",
        "method": b"GET",
        "status": 200,
        "upstream_status": 200,
        "who_ip": b"203.0.113.9",
        "bytes_sent": 346,
    }
    return SimpleNamespace(**{**fields, **overrides})


def formatted(ex: Any, elapsed: float, now: float) -> str:
    record = logging.LogRecord("kratos_hooks.access", logging.INFO, __file__, 1, "access", (), None)
    record.created, record.msecs = now, (now - int(now)) * 1000
    record.__dict__.update(record_fields(**access_fields(ex, elapsed)))
    return JsonFormatter().format(record)


@pytest.mark.parametrize(
    "target, overrides",
    [
        ("/sessions/whoami", {}),
        ("/self-service/login?flow=0b7ab2a8-54a6-4c07-9d5a-6c5b1d4e2f10", {"status": 499}),
        ("/self-service/logout?token=s3cr3t&return_to=https://u:pw@app/x?code=c", {}),
        ('/a%20b/%22q%5C?x="y"\\', {"upstream_status": 0}),
        ("/self-service/login?%74oken=hidden&a+b=1", {}),
    ],
)
async def test_the_buffered_line_is_the_formatters_line(
    target: str, overrides: dict[str, Any]
) -> None:
    ex = exchange(target, **overrides)
    now = time.time()
    fast = AccessLines().line(now, **access_fields(ex, 0.0012345))
    slow = formatted(ex, 0.0012345, now)
    assert list(orjson.loads(fast).items()) == list(orjson.loads(slow).items())
    for secret in ("s3cr3t", ":pw@", "code=c", "hidden"):
        assert secret not in fast.decode()


@pytest.mark.parametrize(
    "target",
    ["/sessions/whoami", "/self-service/logout?token=s3cr3t&return_to=https://u:pw@app/x?code=c"],
)
async def test_the_listeners_line_is_the_same_line(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What the data path writes (``AccessLog.write``, no dictionary per request) is the
    line of the same fields, but for the moment it was written."""
    caplog.set_level(logging.INFO, logger="kratos_hooks.access")
    lines = AccessLines()
    lines.stream = io.BytesIO()
    ex = exchange(target)
    AccessLog(lines).write(ex, 0.0012345)
    written = orjson.loads(lines._lines[0])
    expected = orjson.loads(lines.line(time.time(), **access_fields(ex, 0.0012345)))
    assert written.pop("ts")[:16] == expected.pop("ts")[:16]
    assert list(written.items()) == list(expected.items())


@pytest.mark.parametrize(
    "query",
    ["flow=1", "a=1&b=2", "token=x", "TOKEN=x", "%74oken=x", "x=1&return_to=http://a/?code=2"],
)
def test_the_query_shortcut_never_skips_a_mask(query: str) -> None:
    shown = logged_query(query)
    assert shown == redact_query(query) or "***" not in redact_query(query)
    assert "=x" not in shown or "oken" not in shown.lower()
