"""The parity suite: kratos-hooks' canonical view of a request against the Go oracle."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import pytest

from tests.support.go_oracle import GoOracle


@pytest.fixture(scope="session")
def go_oracle() -> Iterator[GoOracle]:
    with GoOracle() as oracle:
        yield oracle


@pytest.fixture(scope="session")
def newer_than_oracle(go_oracle: GoOracle) -> frozenset[str]:
    """Code points the oracle's Unicode (13) does not assign but Python's tables fold
    (NFKC or casefold) to something else: where Kratos builds differ by Unicode version,
    kratos-hooks follows the newer one, so inputs to the oracle leave these out."""
    assigned: set[int] = set()
    for first, last in go_oracle.tables("assigned")[1]:
        assigned.update(range(first, last + 1))
    return frozenset(
        chr(p)
        for p in range(0x110000)
        if p not in assigned
        and not 0xD800 <= p < 0xE000
        and unicodedata.normalize("NFKC", chr(p)).casefold() != chr(p)
    )
