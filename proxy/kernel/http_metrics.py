"""Prometheus metrics shared by both listeners.

Label values are bounded by construction: the listener name, a route *class* (never a raw
path) and the status code.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["Counter", "Histogram"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter(
    "kratos_hooks_http_requests_total",
    "Requests answered, by listener, route class and status.",
    ["listener", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "kratos_hooks_http_request_duration_seconds",
    "Time from request start to the last byte written, by listener, route class and status.",
    ["listener", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "kratos_hooks_upstream_errors_total",
    "Failed exchanges with Kratos' public API, by kind "
    "(connect, timeout, reset, client_disconnect).",
    ["kind"],
)
UPSTREAM_LATENCY = Histogram(
    "kratos_hooks_upstream_response_seconds",
    "Time until Kratos' response headers arrived, by route class.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
