"""Prometheus metrics shared by both listeners.

Label values are bounded by construction: the listener name, a route *class* (never a raw
path) and the status code.

Changed for the public listener's data path (``edge/wire``): these families are
``kernel.fast_metrics`` ones instead of ``prometheus_client``'s — same names, same labels,
same exposition, same ``labels(...).inc()`` / ``.observe()`` calls — because every proxied
request updates two of them and ``prometheus_client``'s children cost more per update than
the rest of the request's bookkeeping. ``Counter`` and ``Histogram`` name the child types
(what ``labels()`` returns), as they did before.
"""

from __future__ import annotations

from proxy.kernel.fast_metrics import CounterCell, FastCounter, FastHistogram, HistogramCell

Counter = CounterCell
Histogram = HistogramCell

__all__ = ["Counter", "Histogram"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = FastCounter(
    "kratos_hooks_http_requests_total",
    "Requests answered, by listener, route class and status.",
    ["listener", "route", "status"],
)
HTTP_LATENCY = FastHistogram(
    "kratos_hooks_http_request_duration_seconds",
    "Time from request start to the last byte written, by listener, route class and status.",
    ["listener", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = FastCounter(
    "kratos_hooks_upstream_errors_total",
    "Failed exchanges with Kratos' public API, by kind "
    "(connect, timeout, reset, client_disconnect, pool_timeout).",
    ["kind"],
)
UPSTREAM_LATENCY = FastHistogram(
    "kratos_hooks_upstream_response_seconds",
    "Time until Kratos' response headers arrived, by route class.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
