"""Closed-loop peak throughput with ``wrk``: the same connections hammer a target for a while.

A generated Lua script sets the method and body and, in ``done()``, prints the exact
figures as one JSON line, so nothing depends on wrk's human-readable (rounded) output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchkit.processes import BenchError

WRK = shutil.which("wrk") or "/usr/bin/wrk"
_MARK = "BENCH_JSON "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f,"mean_us":%.1f}\n',
    "MARK", summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_script(
    path: Path, method: str, body: bytes, content_type: str, delay_ms: float = 0.0
) -> Path:
    """A wrk Lua script sending ``method`` with ``body`` and reporting as one JSON line;
    with ``delay_ms`` each connection waits that long before each request (wrk's
    ``delay()``), so ``c`` connections offer at most ``c / delay`` requests per second."""
    lines = [f'wrk.method = "{method}"']
    if delay_ms > 0:
        lines.append(f"delay = function() return {delay_ms:.3f} end")
    if body:
        # A Lua long string needs no escaping as long as it cannot close early.
        if not body.isascii() or b"]]" in body:
            raise ValueError("the body must be ASCII without ']]'")
        lines.append(f"wrk.body = [[{body.decode('ascii')}]]")
        lines.append(f'wrk.headers["Content-Type"] = "{content_type}"')
    lines.append(_DONE.replace('"MARK"', json.dumps(_MARK)))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_login_script(path: Path, template: str, content_type: str) -> Path:
    """A wrk script POSTing ``template`` with ``{n}`` replaced by a counter, so every login
    names an identifier of its own (the guard holds concurrent attempts on one identifier
    as the failures they may be)."""
    before, _, after = template.partition("{n}")
    if "'" in template or "\\" in template:
        raise ValueError("the template must not contain ' or \\")
    lines = [
        'wrk.method = "POST"',
        f'wrk.headers["Content-Type"] = "{content_type}"',
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        f"  return wrk.format(nil, nil, nil, '{before}' .. n .. '{after}')",
        "end",
        _DONE.replace('"MARK"', json.dumps(_MARK)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(
    url: str,
    script: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
) -> WrkResult:
    """Run wrk against ``url`` for ``seconds``; the figures of the whole run."""
    argv = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish: {' '.join(argv)}") from exc
    line = next((x for x in done.stdout.splitlines() if x.startswith(_MARK)), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line[len(_MARK) :])
    errors = {k: int(raw[k]) for k in ("connect", "read", "write", "status", "timeout")}
    return WrkResult(
        requests=int(raw["requests"]),
        seconds=int(raw["duration_us"]) / 1e6,
        errors=errors,
        p50_ms=float(raw["p50_us"]) / 1000,
        p90_ms=float(raw["p90_us"]) / 1000,
        p99_ms=float(raw["p99_us"]) / 1000,
        max_ms=float(raw["max_us"]) / 1000,
    )
