"""Reading the service's ``/metrics`` the way Prometheus would."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


async def metric_total(
    http: aiohttp.ClientSession, internal_url: str, name: str, **labels: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    async with http.get(f"{internal_url}/metrics") as response:
        text = (await response.read()).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
