"""The parity suite: kratos-hooks' canonical view of a request against the Go oracle."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.go_oracle import GoOracle


@pytest.fixture(scope="session")
def go_oracle() -> Iterator[GoOracle]:
    with GoOracle() as oracle:
        yield oracle
