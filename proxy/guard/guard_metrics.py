"""The guard's Prometheus metrics; labels are bounded (outcome, bucket kind, operation).

The counters updated on every guarded submission are ``kernel.fast_metrics`` families (the
same names, labels and exposition as ``prometheus_client``'s, a fraction of the cost per
update); the rest are ``prometheus_client``'s own.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from proxy.kernel.fast_metrics import FastCounter

ATTEMPTS = FastCounter(
    "kratos_hooks_backoff_attempts_total",
    "Guarded login attempts, by outcome (success, failure, not_counted, blocked).",
    ["outcome"],
)
BLOCKS = FastCounter(
    "kratos_hooks_backoff_blocks_total",
    "Submissions answered without reaching Kratos, by the bucket that held them "
    "(identifier, ip, pair, rate).",
    ["bucket"],
)
WAITS = Histogram(
    "kratos_hooks_backoff_wait_seconds",
    "The wait announced to blocked callers.",
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RESETS = FastCounter(
    "kratos_hooks_backoff_resets_total",
    "Buckets reset (an identifier with its pairs, or an address), by cause "
    "(login, after_login hook, cli).",
    ["cause"],
)
STORE_ERRORS = FastCounter(
    "kratos_hooks_backoff_store_errors_total",
    "Backoff store operations that failed (the degraded mode decided instead), by operation.",
    ["operation"],
)
RATE_LIMITED = FastCounter(
    "kratos_hooks_rate_limited_total",
    "Self-service submissions refused by a plain per-IP window, by flow kind.",
    ["flow"],
)
AFTER_LOGIN_LOOKUPS = Counter(
    "kratos_hooks_backoff_identity_lookups_total",
    "Identities looked up in Kratos' Admin API by the after-login endpoint (called with an "
    "identity_id only), by result (ok, not_found, unavailable).",
    ["result"],
)
