"""Prometheus metrics of the credentials feature. Labels are fixed vocabularies."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from proxy.kernel.fast_metrics import FastCounter
from proxy.kernel.http_metrics import LATENCY_BUCKETS

VERIFICATIONS = FastCounter(
    "kratos_hooks_tokens_verifications_total",
    "Token checks, by kind (pat, key, svc, unknown) and result (valid, malformed, unknown, "
    "revoked, expired, owner_inactive, rate_limited, unavailable).",
    ["kind", "result"],
)
CACHE = FastCounter(
    "kratos_hooks_tokens_cache_total",
    "Token-cache look-ups, by layer (local, negative, redis) and result (hit, miss).",
    ["layer", "result"],
)
STORE_QUERIES = FastCounter(
    "kratos_hooks_tokens_store_queries_total",
    "Round trips to the token store, by backend (postgres, sqlite) and operation.",
    ["backend", "op"],
)
STORE_ERRORS = Counter(
    "kratos_hooks_tokens_store_errors_total",
    "Token-store failures, by backend; token rules answer 503 meanwhile.",
    ["backend"],
)
STORE_LATENCY = Histogram(
    "kratos_hooks_tokens_store_seconds",
    "Time a token look-up in the store took.",
    buckets=LATENCY_BUCKETS,
)
REVOCATIONS = Counter(
    "kratos_hooks_tokens_revocations_total",
    "Tokens revoked, by reason (revoked, regenerated, leaked, owner).",
    ["reason"],
)
PROPAGATIONS = Counter(
    "kratos_hooks_tokens_revocations_applied_total",
    "Revocations applied to this process's cache, by origin (local, pubsub, notify, poll).",
    ["origin"],
)
ISSUED = Counter(
    "kratos_hooks_tokens_issued_total",
    "Tokens issued, by kind and origin (page, api, admin, cli).",
    ["kind", "origin"],
)
LEAK_REPORTS = Counter(
    "kratos_hooks_tokens_leak_reports_total",
    "Candidate tokens in leak reports, by result (revoked, inactive, unknown, malformed).",
    ["result"],
)
EXPIRY_NOTICES = Counter(
    "kratos_hooks_tokens_expiry_notices_total",
    "TOKEN_EXPIRING notices, by result (sent, failed).",
    ["result"],
)
LAST_USED_PENDING = Gauge(
    "kratos_hooks_tokens_last_used_pending",
    "Tokens whose last use is not written to the store yet.",
)
REDIS_ERRORS = Counter(
    "kratos_hooks_tokens_redis_errors_total",
    "Redis failures of the token cache, revocations and limits (the store is asked meanwhile).",
)
