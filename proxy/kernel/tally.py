"""Counters for the hottest paths: plain integers, exported at scrape time.

A ``prometheus_client`` counter child takes a lock and runs two checks per increment
(about 0.45 µs here); a cache-hit decision makes two such increments in a request whose
whole decision costs a few microseconds. A tally cell is an attribute increment (about
0.05 µs). The event loop is the only writer; a scrape (in an executor thread) reads a copy
of the cells, and an integer read is atomic under the GIL, so a scrape never sees a torn
value — at worst one increment late.

Only for label sets that are bounded by construction (fixed vocabularies, the rules' ids),
like every other metric here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class Cell:
    """One label set's count; ``cell.count += 1`` is the whole increment."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class Tally(Collector):
    """A counter family (``<name>_total``) whose children are ``Cell`` objects."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._cells: dict[tuple[str, ...], Cell] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> Cell:
        """The cell of ``values`` (made on first use): resolve once, increment often."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        cell = self._cells.get(values)
        if cell is None:
            cell = self._cells[values] = Cell()
        return cell

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, cell in list(self._cells.items()):
            family.add_metric(values, cell.count)
        yield family
