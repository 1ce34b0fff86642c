"""Prometheus metrics of the decisions endpoint.

Labels are bounded: rule ids come from the operator's file (plus ``none``), results and
layers are fixed vocabularies, webhook names come from the rules file.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from proxy.kernel.fast_metrics import FastCounter
from proxy.kernel.sessions.metrics import REDIS_ERRORS

# The session look-ups' metrics (whoami, session cache, purges) are the kernel's
# (``proxy.kernel.sessions.metrics``); REDIS_ERRORS is shared with them.
__all__ = ["DECISIONS", "REDIS_ERRORS", "REMOTE", "RULES_LOADED", "RULE_RELOADS"]

# Counted on every decision: tallies (plain integers read at scrape time), not locked counters.
DECISIONS = FastCounter(
    "kratos_hooks_decisions_total",
    "Decisions answered, by rule id and result "
    "(allow, unauthenticated, forbidden, step_up, not_found, rate_limited, unavailable, "
    "bad_path).",
    ["rule", "result"],
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
