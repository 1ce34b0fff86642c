"""The ``Accept`` header as (media range, weight) pairs: pure, shared by every negotiator."""

from __future__ import annotations

from collections.abc import Iterator


def accept_ranges(header: str) -> Iterator[tuple[str, float]]:
    """Each media range, lower-cased, with its ``q`` (1.0 when absent, 0.0 when unreadable)."""
    for part in header.split(","):
        value, *params = (p.strip() for p in part.split(";"))
        if not value:
            continue
        q = 1.0
        for param in params:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(raw)
                except ValueError:
                    q = 0.0
        yield value.lower(), q
