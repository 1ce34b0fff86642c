"""The short versions of ``make chaos`` and ``make soak`` (README "Reliability"): the same
scripts, the same counts, seconds instead of minutes.

Chaos: every dependency cut and stalled in turn under load — no 5xx beyond the documented
ones, no decision allowed while Kratos (a new session) or the credential store (an API key no
cache holds) was unreachable, no welcome event lost or doubled, and
each fault recovered from. Soak: a few intervals of load with the same growth bounds as the
long run.
"""

from __future__ import annotations

import pytest

from chaos import run, soak

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(240)
async def test_every_dependency_cut_and_stalled_under_load_breaks_nothing_undocumented() -> None:
    summary = await run.chaos(run.SHORT)
    summary.print()
    assert summary.failures == []
    assert [f.fault for f in summary.faults] == [
        f"{d} {m}" for d in run.DEPENDENCIES for m in run.MODES
    ]
    # The run did what it claims: the outages showed (Kratos' documented 5xx, queued and
    # late-confirmed events), and events were counted.
    kratos = {f.fault: f for f in summary.faults}
    assert kratos["kratos cut"].documented_5xx > 0
    assert kratos["postgres cut"].documented_5xx > 0  # API keys no cache held: 503
    assert kratos["rabbitmq stall"].late_confirms > 0
    assert summary.events_answered > 50 and summary.lost == 0
    # A copy beyond the first only for a publish whose confirm was lost with a cut connection
    # (docs/events.md: same message_id, consumers de-duplicate); never from a stall.
    assert summary.doubled <= summary.unknown_publishes
    assert all(f.requests > 20 for f in summary.faults)


@pytest.mark.timeout(120)
async def test_a_short_soak_stays_within_its_growth_bounds() -> None:
    summary = await soak.soak(seconds=8, interval=2)
    summary.print()
    assert len(summary.samples) >= 3
    assert summary.failures == []
    assert summary.events_answered > 0
