"""Reading the running service from outside: its metrics, its readiness, its process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families


async def metric(http: aiohttp.ClientSession, internal_url: str, name: str, **labels: str) -> float:
    async with http.get(f"{internal_url}/metrics") as response:
        text = (await response.read()).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def outbox_pending(http: aiohttp.ClientSession, internal_url: str) -> int:
    """Entries not yet delivered (events and identity repairs), as readiness reports them."""
    return int((await _outbox(http, internal_url)).get("pending", 0))


async def outbox_backlog(http: aiohttp.ClientSession, internal_url: str, age: float = 1.0) -> bool:
    """Whether entries older than ``age`` seconds wait: under load new ones are always in
    flight for a moment, so an empty outbox is not what "caught up" means."""
    report = await _outbox(http, internal_url)
    return report.get("status") == "down" or float(report.get("oldest_age_s", 0.0)) > age


async def _outbox(http: aiohttp.ClientSession, internal_url: str) -> dict[str, Any]:
    async with http.get(f"{internal_url}/health/ready") as response:
        report = orjson.loads(await response.read())
    return dict(report["checks"]["hooks_outbox"])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError("VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def error_lines(log_file: Path) -> list[str]:
    """The service's ERROR (and worse) log lines: one JSON object per line."""
    found = []
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            found.append(line)  # not JSON: a traceback or a crash, worth showing
            continue
        if isinstance(record, dict) and str(record.get("level", "")).upper() in {
            "ERROR",
            "CRITICAL",
        }:
            found.append(f"{record.get('msg') or record.get('message')}")
    return found


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
