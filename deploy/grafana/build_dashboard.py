"""Writes kratos-hooks.json, the Grafana dashboard, from the panel list below.

Run ``python deploy/grafana/build_dashboard.py`` after editing; tests/ops checks that the JSON
is current and that every panel's expression returns data from a running service. Only
metrics the service exports are used; the datasource is a dashboard variable, so the file
imports into any Grafana with a Prometheus datasource.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("kratos-hooks.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
RATE = "[$__rate_interval]"


def rate(metric: str, by: str = "", extra: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    matchers = f"{SEL},{extra}" if extra else SEL
    return f"sum{grouping} (rate({metric}{{{matchers}}}{RATE}))"


def quantile(q: float, metric: str, by: str = "", extra: str = "") -> str:
    grouping = f"le, {by}" if by else "le"
    matchers = f"{SEL},{extra}" if extra else SEL
    return (
        f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}_bucket{{{matchers}}}{RATE})))"
    )


Target = tuple[str, str]  # (expression, legend)


def panel(
    title: str,
    targets: list[Target],
    *,
    unit: str = "short",
    kind: str = "timeseries",
    description: str = "",
    width: int = 8,
    mappings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    field: dict[str, Any] = {"unit": unit}
    if mappings:
        field["mappings"] = mappings
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": field, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
        if kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"]}},
        "targets": [
            {
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
                "refId": chr(ord("A") + i),
            }
            for i, (expr, legend) in enumerate(targets)
        ],
        "_width": width,
    }


REQUESTS = "kratos_hooks_http_requests_total"
LATENCY = "kratos_hooks_http_request_duration_seconds"
CACHE = "kratos_hooks_decisions_session_cache_total"
TOKEN_CACHE = "kratos_hooks_tokens_cache_total"
PUBLIC = 'listener="public"'
BREAKER = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green"},
            "1": {"text": "half-open", "color": "orange"},
            "2": {"text": "open", "color": "red"},
        },
    }
]

ROWS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "Overview",
        [
            panel("Targets up", [(f"sum(up{{{SEL}}})", "up")], kind="stat", width=4),
            panel("Requests", [(rate(REQUESTS), "req/s")], unit="reqps", kind="stat", width=4),
            panel(
                "Kratos unreachable (public 502/504)",
                [
                    (
                        rate(REQUESTS, extra=PUBLIC + ',status=~"502|504"')
                        + " / "
                        + rate(REQUESTS, extra=PUBLIC),
                        "share",
                    )
                ],
                unit="percentunit",
                kind="stat",
                width=4,
            ),
            panel(
                "Outbox pending",
                [(f"sum(kratos_hooks_outbox_depth{{{SEL}}})", "entries")],
                kind="stat",
                width=4,
            ),
            panel(
                "Access rules in force",
                [(f"min(kratos_hooks_decisions_rules{{{SEL}}})", "rules")],
                kind="stat",
                width=4,
            ),
            panel(
                "Open breakers",
                [(f"sum(kratos_hooks_breaker_state{{{SEL}}} == bool 2)", "open")],
                kind="stat",
                width=4,
            ),
        ],
    ),
    (
        "Traffic",
        [
            panel(
                "Requests by listener and route class",
                [(rate(REQUESTS, "listener, route"), "{{listener}} {{route}}")],
                unit="reqps",
            ),
            panel(
                "Answers by status",
                [(rate(REQUESTS, "listener, status"), "{{listener}} {{status}}")],
                unit="reqps",
            ),
            panel(
                "Latency by listener and route class",
                [
                    (quantile(0.99, LATENCY, "listener, route"), "p99 {{listener}} {{route}}"),
                    (quantile(0.5, LATENCY, "listener, route"), "p50 {{listener}} {{route}}"),
                ],
                unit="s",
            ),
            panel(
                "Kratos response time by route class",
                [
                    (
                        quantile(0.99, "kratos_hooks_upstream_response_seconds", "route"),
                        "p99 {{route}}",
                    ),
                    (
                        quantile(0.5, "kratos_hooks_upstream_response_seconds", "route"),
                        "p50 {{route}}",
                    ),
                ],
                unit="s",
                description="Until Kratos' response headers arrived (public listener).",
            ),
            panel(
                "Upstream errors by kind",
                [(rate("kratos_hooks_upstream_errors_total", "kind"), "{{kind}}")],
                unit="reqps",
                description="connect → 502, timeout → 504, reset mid-response, client_disconnect.",
            ),
        ],
    ),
    (
        "Login guard",
        [
            panel(
                "Login attempts by outcome",
                [(rate("kratos_hooks_backoff_attempts_total", "outcome"), "{{outcome}}")],
                unit="reqps",
            ),
            panel(
                "Blocks by bucket",
                [(rate("kratos_hooks_backoff_blocks_total", "bucket"), "{{bucket}}")],
                unit="reqps",
                description="Submissions answered without reaching Kratos.",
            ),
            panel(
                "Waits announced to blocked callers",
                [
                    (quantile(0.5, "kratos_hooks_backoff_wait_seconds"), "p50"),
                    (quantile(0.99, "kratos_hooks_backoff_wait_seconds"), "p99"),
                ],
                unit="s",
            ),
            panel(
                "Submission-limit refusals by flow",
                [(rate("kratos_hooks_rate_limited_total", "flow"), "{{flow}}")],
                unit="reqps",
                description="The plain per-IP windows (RATE_LIMIT_*).",
            ),
            panel(
                "Backoff resets by cause",
                [(rate("kratos_hooks_backoff_resets_total", "cause"), "{{cause}}")],
                unit="reqps",
            ),
            panel(
                "Redis errors",
                [
                    (
                        rate("kratos_hooks_backoff_store_errors_total", "operation"),
                        "guard {{operation}}",
                    ),
                    (rate("kratos_hooks_decisions_redis_errors_total"), "session cache"),
                    (
                        rate("kratos_hooks_reservation_errors_total", "operation"),
                        "reservation {{operation}}",
                    ),
                ],
                unit="reqps",
                description="Guard: the in-process limiter decided instead. Session cache: Kratos "
                "asked directly. Reservations: the outbox key alone guards once-per-identity.",
            ),
            panel(
                "Redis failovers followed",
                [(rate("kratos_hooks_redis_master_changes_total"), "master changes")],
                unit="reqps",
                description="Behind Sentinel: the sentinels named another master and this "
                "service moved to it.",
            ),
        ],
    ),
    (
        "Decisions",
        [
            panel(
                "Decisions by rule and result",
                [(rate("kratos_hooks_decisions_total", "rule, result"), "{{rule}} {{result}}")],
                unit="reqps",
            ),
            panel(
                "Decision latency",
                [
                    (quantile(0.99, LATENCY, extra='listener="internal",route="decisions"'), "p99"),
                    (quantile(0.5, LATENCY, extra='listener="internal",route="decisions"'), "p50"),
                ],
                unit="s",
            ),
            panel(
                "Session cache hit ratio by layer",
                [
                    (
                        rate(CACHE, "layer", 'result="hit"') + " / " + rate(CACHE, "layer"),
                        "{{layer}}",
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Kratos whoami latency",
                [
                    (quantile(0.99, "kratos_hooks_decisions_whoami_seconds"), "p99"),
                    (quantile(0.5, "kratos_hooks_decisions_whoami_seconds"), "p50"),
                ],
                unit="s",
            ),
            panel(
                "Kratos whoami calls by result",
                [(rate("kratos_hooks_decisions_whoami_total", "result"), "{{result}}")],
                unit="reqps",
            ),
            panel(
                "Remote authorizer results by webhook",
                [
                    (
                        rate("kratos_hooks_decisions_remote_total", "webhook, result"),
                        "{{webhook}} {{result}}",
                    )
                ],
                unit="reqps",
                description="A rule's remote webhook: allow, deny, and the cached answers.",
            ),
            panel(
                "Session-cache purges after a logout",
                [(rate("kratos_hooks_decisions_session_purges_total", "origin"), "{{origin}}")],
                unit="reqps",
                description="local: a logout through this replica; pubsub: through another.",
            ),
            panel(
                "Rules-file reloads by result",
                [(rate("kratos_hooks_decisions_rule_reloads_total", "result"), "{{result}}")],
                unit="reqps",
                description="result=error: a new file was rejected and the previous rules stay.",
            ),
        ],
    ),
    (
        "Tokens",
        [
            panel(
                "Token checks by kind and result",
                [
                    (
                        rate("kratos_hooks_tokens_verifications_total", "kind, result"),
                        "{{kind}} {{result}}",
                    )
                ],
                unit="reqps",
                description="Personal access tokens, API keys and service tokens presented to a "
                "token rule. unavailable: the store failed and the rule answered 503.",
            ),
            panel(
                "Token cache hit ratio by layer",
                [
                    (
                        rate(TOKEN_CACHE, "layer", 'result="hit"')
                        + " / "
                        + rate(TOKEN_CACHE, "layer"),
                        "{{layer}}",
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Token store latency",
                [
                    (quantile(0.99, "kratos_hooks_tokens_store_seconds"), "p99"),
                    (quantile(0.5, "kratos_hooks_tokens_store_seconds"), "p50"),
                ],
                unit="s",
            ),
            panel(
                "Token store round trips by operation",
                [
                    (
                        rate("kratos_hooks_tokens_store_queries_total", "backend, op"),
                        "{{backend}} {{op}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "Token store and Redis errors",
                [
                    (
                        rate("kratos_hooks_tokens_store_errors_total", "backend"),
                        "store {{backend}}",
                    ),
                    (rate("kratos_hooks_tokens_redis_errors_total"), "redis"),
                ],
                unit="reqps",
                description="Store: uncached tokens fail closed (503). Redis: the store is asked "
                "instead; a revocation made meanwhile reaches the other replicas when their "
                "cache entry expires (TOKENS_CACHE_TTL).",
            ),
            panel(
                "Revocations",
                [
                    (rate("kratos_hooks_tokens_revocations_total", "reason"), "made: {{reason}}"),
                    (
                        rate("kratos_hooks_tokens_revocations_applied_total", "origin"),
                        "applied: {{origin}}",
                    ),
                ],
                unit="reqps",
                description="made: by this replica; applied: to this replica's cache, by how "
                "the revocation arrived.",
            ),
            panel(
                "Tokens issued by kind and origin",
                [
                    (
                        rate("kratos_hooks_tokens_issued_total", "kind, origin"),
                        "{{kind}} {{origin}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "Leak reports and expiry notices",
                [
                    (rate("kratos_hooks_tokens_leak_reports_total", "result"), "leak {{result}}"),
                    (
                        rate("kratos_hooks_tokens_expiry_notices_total", "result"),
                        "expiry notice {{result}}",
                    ),
                ],
                unit="reqps",
            ),
            panel(
                "Last uses not written yet",
                [(f"sum(kratos_hooks_tokens_last_used_pending{{{SEL}}})", "tokens")],
                description="Grows while the store is unavailable; written in batches.",
            ),
        ],
    ),
    (
        "Hooks and outbox",
        [
            panel(
                "Hook calls by hook and outcome",
                [
                    (
                        rate("kratos_hooks_hook_requests_total", "hook, outcome"),
                        "{{hook}} {{outcome}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "Hook duration (p99)",
                [(quantile(0.99, "kratos_hooks_hook_duration_seconds", "hook"), "{{hook}}")],
                unit="s",
            ),
            panel(
                "Welcome events by result",
                [(rate("kratos_hooks_welcome_events_total", "result"), "{{result}}")],
                unit="reqps",
            ),
            panel(
                "Event publishes by result",
                [(rate("kratos_hooks_outbox_publish_total", "result"), "{{result}}")],
                unit="reqps",
                description="confirmed by RabbitMQ; unsent (no connection), unknown (lost before "
                "the confirm: published again), nacked (refused by the broker).",
            ),
            panel(
                "Outbox depth by kind",
                [(f"sum by (kind) (kratos_hooks_outbox_depth{{{SEL}}})", "{{kind}}")],
            ),
            panel(
                "Outbox oldest entry",
                [(f"max(kratos_hooks_outbox_oldest_age_seconds{{{SEL}}})", "age")],
                unit="s",
            ),
            panel(
                "Outbox errors by backend",
                [(rate("kratos_hooks_outbox_errors_total", "backend"), "{{backend}}")],
                unit="reqps",
                description="postgres: entries went to the local spool; spool: the hook "
                "answered 503.",
            ),
            panel(
                "Outbox lease takeovers",
                [(rate("kratos_hooks_outbox_lease_takeovers_total", "backend"), "{{backend}}")],
                unit="reqps",
                description="entries another replica had claimed and never finished (it died "
                "or lost the database), taken over after HOOKS_OUTBOX_LEASE; each may have "
                "been published once more, with the same message_id.",
            ),
            panel(
                "Identity resolutions by resolver and result",
                [
                    (
                        rate("kratos_hooks_identity_resolutions_total", "resolver, result"),
                        "{{resolver}} {{result}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "Identity metadata by origin and outcome",
                [
                    (
                        rate("kratos_hooks_identity_metadata_total", "origin, outcome"),
                        "{{origin}} {{outcome}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "Circuit breakers",
                [(f"max by (name) (kratos_hooks_breaker_state{{{SEL}}})", "{{name}}")],
                mappings=BREAKER,
                description="0 closed, 1 half-open, 2 open.",
            ),
        ],
    ),
]


def variable(name: str, label: str, query: str, *, include_all: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": include_all,
        "multi": include_all,
        "allValue": ".*" if include_all else None,
        "current": {},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        height = 4 if all(p["type"] == "stat" for p in row) else 8
        for item in row:
            width = item.pop("_width")
            if x + width > 24:
                x, y = 0, y + height
            item["id"] = next_id
            item["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
            next_id += 1
            panels.append(item)
            x += width
        y += height
    return {
        "title": "kratos-hooks",
        "uid": "kratos-hooks",
        "description": "Edge proxy, login guard, decisions and Kratos hooks (kratos-hooks).",
        "tags": ["kratos", "kratos-hooks", "authentication"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                variable(
                    "job",
                    "Job",
                    "label_values(kratos_hooks_http_requests_total, job)",
                    include_all=False,
                ),
                variable(
                    "instance",
                    "Instance",
                    'label_values(kratos_hooks_http_requests_total{job=~"$job"}, instance)',
                    include_all=True,
                ),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
