"""Property 4: every flow id gofrs/uuid parses has the same canonical form here; and
``?flow=`` is read as Go's ``url.ParseQuery`` reads it."""

from __future__ import annotations

from collections.abc import Sequence

from proxy.kernel.canonical import canonical_uuid, query_get
from tests.parity.strategies import flow_ids, queries, run_batches
from tests.support.go_oracle import GoOracle


def check_flow_ids(oracle: GoOracle, batch: Sequence[str]) -> None:
    answers: list[str | None] = oracle.many("uuid", [{"value": v} for v in batch])
    problems = []
    for value, go in zip(batch, answers, strict=True):
        ours = canonical_uuid(value)
        if go is not None and ours != go:
            problems.append((value, go, ours))
        # Accepting more is allowed only for the upper-case URN prefix (merges keys).
        if go is None and ours is not None and not value.startswith("URN:UUID:"):
            problems.append((value, go, ours))
    assert not problems, problems[:10]


def test_flow_ids_parse_as_gofrs_parses_them(go_oracle: GoOracle) -> None:
    run_batches(flow_ids(), lambda batch: check_flow_ids(go_oracle, batch))


def check_queries(oracle: GoOracle, batch: Sequence[str]) -> None:
    names = ["flow", "Flow", "x", ""]
    asked = [(q, n) for q in batch for n in names[: 1 + len(q) % 4]]
    answers: list[str] = oracle.many("query_get", [{"query": q, "name": n} for q, n in asked])
    problems = [
        (q, n, go, query_get(q, n))
        for (q, n), go in zip(asked, answers, strict=True)
        if query_get(q, n) != go
    ]
    assert not problems, problems[:10]


def test_query_get_reads_what_kratos_reads(go_oracle: GoOracle) -> None:
    run_batches(queries(), lambda batch: check_queries(go_oracle, batch))
