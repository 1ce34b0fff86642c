"""The guard's Prometheus metrics; labels are bounded (outcome, bucket kind, operation)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "kratos_hooks_backoff_attempts_total",
    "Guarded login attempts, by outcome (success, failure, not_counted, blocked).",
    ["outcome"],
)
BLOCKS = Counter(
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
RESETS = Counter(
    "kratos_hooks_backoff_resets_total",
    "Buckets reset (an identifier with its pairs, or an address), by cause "
    "(login, after_login hook, cli).",
    ["cause"],
)
STORE_ERRORS = Counter(
    "kratos_hooks_backoff_store_errors_total",
    "Backoff store operations that failed (the degraded mode decided instead), by operation.",
    ["operation"],
)
RATE_LIMITED = Counter(
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
