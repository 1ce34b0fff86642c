"""The allocation-free metric families export exactly what prometheus_client's would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.kernel.fast_metrics import FastCounter, FastHistogram

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def samples(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if line and "_created" not in line)


def test_counter_and_histogram_expose_like_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = FastCounter("demo_requests_total", "Requests.", ["route", "status"], ours)
    histogram = FastHistogram("demo_seconds", "Time.", ["route"], BUCKETS, ours)
    reference_counter = Counter("demo_requests", "Requests.", ["route", "status"], registry=theirs)
    reference_histogram = Histogram(
        "demo_seconds", "Time.", ["route"], buckets=BUCKETS, registry=theirs
    )
    for value in (0.0005, 0.001, 0.0011, 0.3, 1.0, 7.5, 31.0):
        counter.labels("login", "200").inc()
        reference_counter.labels("login", "200").inc()
        histogram.labels("login").observe(value)
        reference_histogram.labels("login").observe(value)
    counter.labels("other", "502").inc(2)
    reference_counter.labels("other", "502").inc(2)
    assert samples(ours) == samples(theirs)
