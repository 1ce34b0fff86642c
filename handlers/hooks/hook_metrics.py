"""Prometheus metrics of the hooks. Label values are bounded: hook names, outcomes, resolver
and breaker names are fixed sets chosen in code, never taken from a request."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from proxy.kernel.http_metrics import LATENCY_BUCKETS

HOOK_REQUESTS = Counter(
    "kratos_hooks_hook_requests_total",
    "Kratos hook calls answered, by hook and outcome.",
    ["hook", "outcome"],
)
HOOK_LATENCY = Histogram(
    "kratos_hooks_hook_duration_seconds",
    "Time a hook held Kratos, by hook.",
    ["hook"],
    buckets=LATENCY_BUCKETS,
)
WELCOME_EVENTS = Counter(
    "kratos_hooks_welcome_events_total",
    "Welcome events by result (published, outboxed, relayed, duplicate, skipped).",
    ["result"],
)
OUTBOX_DEPTH = Gauge(
    "kratos_hooks_outbox_depth", "Outbox entries waiting for delivery, by kind.", ["kind"]
)
OUTBOX_AGE = Gauge(
    "kratos_hooks_outbox_oldest_age_seconds", "Age of the oldest undelivered outbox entry."
)
RESOLUTIONS = Counter(
    "kratos_hooks_identity_resolutions_total",
    "Identity resolutions by resolver and result (found, not_found, unavailable, error).",
    ["resolver", "result"],
)
METADATA_WRITES = Counter(
    "kratos_hooks_identity_metadata_total",
    "Identity metadata outcomes (patched, unchanged, not_found, failed), by origin.",
    ["origin", "outcome"],
)
OUTBOX_ERRORS = Counter(
    "kratos_hooks_outbox_errors_total",
    "Outbox operations that failed, by backend (postgres, spool); a Postgres write that fails "
    "goes to the spool, a spool write that fails is a 503 to Kratos.",
    ["backend"],
)
RESERVATION_ERRORS = Counter(
    "kratos_hooks_reservation_errors_total",
    "Once-per-identity reservations Redis could not take or give back, by operation (reserve, "
    "release); the outbox's unique key is the only guard meanwhile.",
    ["operation"],
)
OUTBOX_PUBLISHES = Counter(
    "kratos_hooks_outbox_publish_total",
    "Publishes of welcome events by result: confirmed, nacked (refused by the broker, retried "
    "after a backoff), unsent (no connection), unknown (the connection was lost, or silent "
    "past HOOKS_CONFIRM_TIMEOUT, before the confirm: published again after a reconnect).",
    ["result"],
)
LATE_CONFIRMS = Counter(
    "kratos_hooks_outbox_late_confirms_total",
    "Confirms that came after the hook had stopped waiting (HOOKS_PUBLISH_TIMEOUT): the event "
    "was marked delivered, never published a second time.",
)
LEASE_TAKEOVERS = Counter(
    "kratos_hooks_outbox_lease_takeovers_total",
    "Outbox entries claimed after another process' claim on them expired unfinished (a "
    "replica that crashed, or lost the database, while it held them).",
    ["backend"],
)
