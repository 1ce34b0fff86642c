"""1 GiB up and 1 GiB down through the proxy, and how much its resident memory grew.

The upstream is the test suite's byte echo (``tests/support/echo.py``): it hashes what it
receives and streams a pattern of any length, so neither side holds a body. Growth is the
peak (``VmHWM``) after both transfers minus the resident size after a warm-up request.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

GIB = 1024**3
PATTERN = bytes(range(256)) * 256  # 64 KiB, as tests/support/echo.py sends


def memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


async def _body() -> AsyncIterator[bytes]:
    for _ in range(GIB // len(PATTERN)):
        yield PATTERN


async def _transfer(url: str, pid: int) -> tuple[int, int, float, float]:
    timeout = aiohttp.ClientTimeout(total=600)
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(auto_decompress=False, timeout=timeout) as http:
        async with http.get(url + "/bytes?n=1024") as response:
            await response.read()
        baseline = memory(pid, "VmRSS")
        expected = hashlib.sha256()
        for _ in range(GIB // len(PATTERN)):
            expected.update(PATTERN)
        started = loop.time()
        async with http.post(
            url + "/upload",
            data=_body(),
            headers={"Content-Length": str(GIB), "Content-Type": "application/octet-stream"},
        ) as response:
            report = await response.json()
        up = loop.time() - started
        if report["body_size"] != GIB or report["body_sha256"] != expected.hexdigest():
            raise RuntimeError(f"the upload arrived damaged: {report['body_size']} bytes")
        started = loop.time()
        received = 0
        async with http.get(url + f"/bytes?n={GIB}") as response:
            async for chunk in response.content.iter_any():
                received += len(chunk)
        down = loop.time() - started
        if received != GIB:
            raise RuntimeError(f"the download was cut at {received} bytes")
    return baseline, memory(pid, "VmHWM"), up, down


def run(url: str, pid: int) -> dict[str, float]:
    """Transfer through ``url`` (the proxy, process ``pid``); the figures in MiB and s."""
    baseline, peak, up, down = asyncio.run(_transfer(url, pid))
    mib = 1024**2
    return {
        "rss_baseline_mib": baseline / mib,
        "rss_growth_mib": (peak - baseline) / mib,
        "upload_seconds": up,
        "download_seconds": down,
    }
