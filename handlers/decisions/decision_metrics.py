"""Prometheus metrics of the decisions endpoint.

Labels are bounded: rule ids come from the operator's file (plus ``none``), results and
layers are fixed vocabularies, webhook names come from the rules file.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from proxy.kernel.http_metrics import LATENCY_BUCKETS
from proxy.kernel.tally import Tally

# Counted on every decision: tallies (plain integers read at scrape time), not locked counters.
DECISIONS = Tally(
    "kratos_hooks_decisions_total",
    "Decisions answered, by rule id and result "
    "(allow, unauthenticated, forbidden, step_up, not_found, rate_limited, unavailable, "
    "bad_path).",
    ["rule", "result"],
)
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
SESSION_CACHE = Tally(
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
REMOTE = Counter(
    "kratos_hooks_decisions_remote_total",
    "Remote webhook authorizer results (allow, deny, cached_allow, cached_deny).",
    ["webhook", "result"],
)
RULE_RELOADS = Counter(
    "kratos_hooks_decisions_rule_reloads_total",
    "Rules-file (re)loads, by result (ok, error); on error the previous rules stay.",
    ["result"],
)
RULES_LOADED = Gauge(
    "kratos_hooks_decisions_rules",
    "Number of access rules currently in force.",
)
