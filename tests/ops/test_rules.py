"""The alert rules under Prometheus' own tools: ``promtool check rules`` on the plain file,
and ``promtool test rules`` with a firing and a quiet case for every alert (synthetic series
on Prometheus' own evaluator; the live test in test_live.py checks the same expressions
against a running service)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.chart import PLAIN_RULES, plain_rules_text

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian prometheus) missing")

JOB = 'job="kratos-hooks"'
POD = "kratos-hooks-5d8f7c9b4-x2x7q"


def _rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    inner = ",".join([JOB, *(f'{k}="{v}"' for k, v in sorted(labels.items()))])
    return {"series": f"{metric}{{{inner}}}", "values": values}


# alert -> (input series, eval time, expected labels besides alertname/severity/job, the
# summary as Prometheus expands it, a quiet case: (series, eval time)).
Case = tuple[list[dict[str, str]], str, dict[str, str], str, tuple[list[dict[str, str]], str]]
REQUESTS = "kratos_hooks_http_requests_total"
SLOW_BUCKETS = (("0.25", "0x20"), ("0.5", "0x20"), ("1", "0+100x20"), ("+Inf", "0+100x20"))
CASES: dict[str, Case] = {
    "KratosHooksDown": (
        [_series("up", "1 1 0 0 0 0", instance="10.1.2.3:8081")],
        "5m",
        {"instance": "10.1.2.3:8081"},
        "kratos-hooks 10.1.2.3:8081 does not answer scrapes",
        # down for one minute only: still pending
        ([_series("up", "1 1 1 1 0 1", instance="10.1.2.3:8081")], "5m"),
    ),
    "KratosHooksAbsent": (
        [{"series": 'up{job="something-else"}', "values": "1x10"}],
        "6m",
        {},
        "No kratos-hooks target is scraped at all",
        ([_series("up", "1x10", instance="10.1.2.3:8081")], "6m"),
    ),
    "KratosHooksNotReady": (
        [
            {
                "series": 'kube_pod_status_ready{condition="false",namespace="identity",'
                f'pod="{POD}"}}',
                "values": "1x15",
            }
        ],
        "12m",
        {"namespace": "identity", "pod": POD},
        f"kratos-hooks pod {POD} has not been ready for 10 minutes",
        # another workload whose name merely starts the same way
        (
            [
                {
                    "series": 'kube_pod_status_ready{condition="false",namespace="identity",'
                    'pod="kratos-hooks-db-0"}',
                    "values": "1x15",
                }
            ],
            "12m",
        ),
    ),
    "KratosHooksKratosUnreachable": (
        [
            _series(REQUESTS, "0+540x10", listener="public", route="login", status="200"),
            _series(REQUESTS, "0+60x10", listener="public", route="login", status="502"),
        ],
        "8m",
        {},
        "Kratos is unreachable from kratos-hooks",
        (
            [
                _series(REQUESTS, "0+594x10", listener="public", route="login", status="200"),
                _series(REQUESTS, "0+6x10", listener="public", route="login", status="502"),
                # an internal 502 (a hook's) is not Kratos' public API failing
                _series(REQUESTS, "0+600x10", listener="internal", route="hooks", status="502"),
            ],
            "8m",
        ),
    ),
    "KratosHooksLoginFailuresHigh": (
        [_series("kratos_hooks_backoff_attempts_total", "0+150x15", outcome="failure")],
        "12m",
        {},
        "150 failed password logins per minute",
        ([_series("kratos_hooks_backoff_attempts_total", "0+50x15", outcome="failure")], "12m"),
    ),
    "KratosHooksLoginBlocksHigh": (
        [_series("kratos_hooks_backoff_blocks_total", "0+60x15", bucket="pair")],
        "12m",
        {},
        "60 submissions per minute held by the backoff or a window",
        ([_series("kratos_hooks_backoff_blocks_total", "0+10x15", bucket="pair")], "12m"),
    ),
    "KratosHooksRedisErrors": (
        [_series("kratos_hooks_decisions_redis_errors_total", "0+3x10")],
        "6m",
        {},
        "kratos-hooks cannot reach Redis",
        ([_series("kratos_hooks_backoff_store_errors_total", "5x10", operation="judge")], "6m"),
    ),
    "KratosHooksOutboxErrors": (
        [_series("kratos_hooks_outbox_errors_total", "0+3x12", backend="postgres")],
        "10m",
        {"backend": "postgres"},
        "The postgres outbox is failing",
        ([_series("kratos_hooks_outbox_errors_total", "7x12", backend="postgres")], "10m"),
    ),
    "KratosHooksResolverUnavailable": (
        [
            _series(
                "kratos_hooks_identity_resolutions_total",
                "0+2x20",
                resolver="api",
                result="unavailable",
            )
        ],
        "15m",
        {"resolver": "api"},
        "The api identity resolver is failing",
        (
            [
                _series(
                    "kratos_hooks_identity_resolutions_total",
                    "0+2x20",
                    resolver="api",
                    result="not_found",
                )
            ],
            "15m",
        ),
    ),
    "KratosHooksBreakerOpen": (
        [_series("kratos_hooks_breaker_state", "0 0 2 2 2 2", name="kratos_admin")],
        "5m",
        {"name": "kratos_admin"},
        "The kratos_admin circuit breaker is open",
        # half-open (a probe is being made) is not open
        ([_series("kratos_hooks_breaker_state", "0 0 1 1 1 1", name="kratos_admin")], "5m"),
    ),
    "KratosHooksBrokerUnavailable": (
        [_series("kratos_hooks_welcome_events_total", "0+1x20", result="outboxed")],
        "15m",
        {},
        "Welcome events are not reaching RabbitMQ",
        ([_series("kratos_hooks_welcome_events_total", "0+1x20", result="published")], "15m"),
    ),
    "KratosHooksOutboxStale": (
        [_series("kratos_hooks_outbox_oldest_age_seconds", "0+60x20")],
        "17m",
        {},
        "The oldest outbox entry is 17m 0s old",
        # drained every few minutes: never old for long
        ([_series("kratos_hooks_outbox_oldest_age_seconds", "0 60 120 0 60 120 0 60 120 0")], "9m"),
    ),
    "KratosHooksHooksRejected": (
        [
            _series(
                "kratos_hooks_hook_requests_total",
                "0+5x10",
                hook="verification",
                outcome="unauthorized",
            )
        ],
        "8m",
        {"hook": "verification", "outcome": "unauthorized"},
        "Kratos' verification hook calls are answered unauthorized",
        (
            [
                _series(
                    "kratos_hooks_hook_requests_total",
                    "0+5x10",
                    hook="verification",
                    outcome="published",
                )
            ],
            "8m",
        ),
    ),
    "KratosHooksDecisionsSlow": (
        [
            _series(
                "kratos_hooks_http_request_duration_seconds_bucket",
                values,
                listener="internal",
                route="decisions",
                status="200",
                le=le,
            )
            for le, values in SLOW_BUCKETS
        ],
        "15m",
        {},
        "Decisions' p99 is 995ms",
        (
            [
                _series(
                    "kratos_hooks_http_request_duration_seconds_bucket",
                    values,
                    listener="internal",
                    route="decisions",
                    status="200",
                    le=le,
                )
                for le, values in (("0.25", "0+100x20"), ("+Inf", "0+100x20"))
            ],
            "15m",
        ),
    ),
    "KratosHooksRulesRejected": (
        # the series is born with the first rejection (no 0 before it)
        [_series("kratos_hooks_decisions_rule_reloads_total", "_ _ 1 1 1", result="error")],
        "3m",
        {},
        "A new access-rules file was rejected",
        # the rejection was 20 minutes ago: resolved
        ([_series("kratos_hooks_decisions_rule_reloads_total", "0 0 1x30", result="error")], "25m"),
    ),
    "KratosHooksEventsUnconfirmed": (
        [_series("kratos_hooks_outbox_publish_total", "0+2x20", result="unsent")],
        "15m",
        {"result": "unsent"},
        "Event publishes keep ending unsent",
        # a broker restart: a few unknown outcomes, then every publish confirmed again
        (
            [
                _series(
                    "kratos_hooks_outbox_publish_total",
                    "0 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3",
                    result="unknown",
                ),
                _series("kratos_hooks_outbox_publish_total", "0+2x20", result="confirmed"),
            ],
            "15m",
        ),
    ),
    "KratosHooksRedisFailover": (
        [_series("kratos_hooks_redis_master_changes_total", "0 0 0 1 1 1")],
        "5m",
        {},
        "kratos-hooks followed a Redis Sentinel failover",
        # the failover was 20 minutes ago: resolved
        ([_series("kratos_hooks_redis_master_changes_total", "0 1 1x30")], "25m"),
    ),
    "KratosHooksTokenStoreUnavailable": (
        [_series("kratos_hooks_tokens_store_errors_total", "0+4x10", backend="postgres")],
        "6m",
        {"backend": "postgres"},
        "The postgres token store is failing",
        # one failed query an hour ago, none since
        (
            [_series("kratos_hooks_tokens_store_errors_total", "0 1 1x80", backend="postgres")],
            "70m",
        ),
    ),
    "KratosHooksTokenGuessing": (
        [
            _series(
                "kratos_hooks_tokens_verifications_total",
                "0+300x20",
                kind="unknown",
                result="malformed",
            )
        ],
        "15m",
        {},
        "300 malformed or unknown tokens presented per minute",
        # as many valid ones: a busy API, not a guesser
        (
            [
                _series(
                    "kratos_hooks_tokens_verifications_total",
                    "0+300x20",
                    kind="key",
                    result="valid",
                )
            ],
            "15m",
        ),
    ),
    "KratosHooksTokenLeaked": (
        # the series is born with the first report that revoked a token (no 0 before it)
        [_series("kratos_hooks_tokens_leak_reports_total", "_ _ 1 1 1", result="revoked")],
        "3m",
        {},
        "A leak report revoked an active token",
        # reports of tokens that were already revoked: nothing to do
        ([_series("kratos_hooks_tokens_leak_reports_total", "0 0 1 2 2", result="inactive")], "3m"),
    ),
}


def _unit_tests() -> dict[str, Any]:
    rules = _rules()
    tests = []
    for alert, (series, at, labels, summary, (quiet_series, quiet_at)) in CASES.items():
        rule = rules[alert]
        annotations = {**rule["annotations"], "summary": summary}
        if "{{" in annotations["description"]:
            annotations["description"] = _expand_known(alert, annotations["description"])
        expected = {"severity": rule["labels"]["severity"], **labels}
        if alert != "KratosHooksNotReady":
            expected["job"] = "kratos-hooks"
        tests.append(
            {
                "name": f"{alert} fires",
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": alert,
                        "exp_alerts": [{"exp_labels": expected, "exp_annotations": annotations}],
                    }
                ],
            }
        )
        tests.append(
            {
                "name": f"{alert} stays quiet",
                "interval": "1m",
                "input_series": quiet_series,
                "alert_rule_test": [{"eval_time": quiet_at, "alertname": alert, "exp_alerts": []}],
            }
        )
    return {"rule_files": [str(PLAIN_RULES)], "evaluation_interval": "1m", "tests": tests}


# Descriptions that quote $labels / $value, as Prometheus expands them in the cases above.
EXPANDED = {
    "KratosHooksDown": (
        "Prometheus cannot scrape /metrics on 10.1.2.3:8081: the process is down, hung, or its "
        "internal port is unreachable. Logins through this replica fail."
    ),
    "KratosHooksKratosUnreachable": (
        "10% of public answers are 502/504 (Kratos unreachable or silent), or of decisions are "
        "503 (whoami failing). Sign-in and every protected app are down."
    ),
    "KratosHooksBrokerUnavailable": (
        "10 welcome events in 10 minutes could not be published and wait in the outbox; the "
        "relay delivers them when the broker is back."
    ),
}


def _expand_known(alert: str, template: str) -> str:
    if alert in EXPANDED:
        return EXPANDED[alert]
    return template  # static text with {{ }} only in label references checked elsewhere


def test_every_alert_has_a_unit_test() -> None:
    assert set(CASES) == set(_rules())


def test_plain_rule_file_is_rendered_from_the_chart() -> None:
    assert PLAIN_RULES.read_text(encoding="utf-8") == plain_rules_text(), (
        "deploy/prometheus/kratos-hooks-rules.yml is stale: python -m tests.ops.chart --write"
    )


def test_promtool_check_rules_accepts_the_plain_file() -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(PLAIN_RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_fire_and_stay_quiet(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    path = tmp_path / "kratos-hooks-rules.test.yml"
    path.write_text(yaml.safe_dump(_unit_tests(), sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
