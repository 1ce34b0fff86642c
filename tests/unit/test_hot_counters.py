"""Hot-path counters (``FastCounter`` cells incremented in place) scrape exactly like
prometheus_client counters, one sample per label set."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from proxy.kernel.fast_metrics import FastCounter


def test_a_hot_counter_scrapes_as_a_counter_per_label_set() -> None:
    registry = CollectorRegistry()
    counter = FastCounter(
        "demo_decisions_total", "Decisions.", ["rule", "result"], registry=registry
    )
    allow = counter.labels("app", "allow")
    allow.count += 1
    allow.count += 1
    counter.labels("app", "forbidden").count += 1
    assert counter.labels("app", "allow") is allow  # resolved once, incremented often
    text = generate_latest(registry).decode()
    assert "# TYPE demo_decisions_total counter" in text
    assert 'demo_decisions_total{result="allow",rule="app"} 2.0' in text
    assert (
        registry.get_sample_value("demo_decisions_total", {"rule": "app", "result": "forbidden"})
        == 1.0
    )
    assert (
        registry.get_sample_value("demo_decisions_total", {"rule": "app", "result": "deny"}) is None
    )


def test_a_hot_counter_refuses_the_wrong_labels() -> None:
    counter = FastCounter("demo_total", "Demo.", ["layer", "result"], registry=None)
    with pytest.raises(ValueError, match="expected labels"):
        counter.labels("local")
