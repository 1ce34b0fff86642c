"""Metrics of the Kratos session look-ups (names kept from when they were the decisions' own:
dashboards and alerts read them)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from proxy.kernel.fast_metrics import FastCounter
from proxy.kernel.http_metrics import LATENCY_BUCKETS

WHOAMI = Counter(
    "kratos_hooks_decisions_whoami_total",
    "Calls to Kratos' /sessions/whoami, by result (valid, invalid, aal2_required, error).",
    ["result"],
)
WHOAMI_LATENCY = Histogram(
    "kratos_hooks_decisions_whoami_seconds",
    "Time Kratos took to answer /sessions/whoami.",
    buckets=LATENCY_BUCKETS,
)
SESSION_CACHE = FastCounter(
    "kratos_hooks_decisions_session_cache_total",
    "Session-cache look-ups, by layer (local, redis) and result (hit, miss).",
    ["layer", "result"],
)
SESSION_PURGES = Counter(
    "kratos_hooks_decisions_session_purges_total",
    "Session-cache purges after a logout, by origin (local, pubsub).",
    ["origin"],
)
REDIS_ERRORS = Counter(
    "kratos_hooks_decisions_redis_errors_total",
    "Redis failures on the decision path (Kratos is asked directly meanwhile).",
)
