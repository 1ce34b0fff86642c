"""Streaming-proxy benchmark: kratos-hooks beside nginx, both in front of one fast upstream.

Two workloads (a small GET, a 64 KiB POST whose answer is small), three ways each:
client → upstream directly, client → kratos-hooks → upstream, client → nginx → upstream.
First the peak (closed loop, ``wrk``), then latency at half of kratos-hooks' own peak
(open loop, fixed rate) to get the p99 kratos-hooks adds. See bench/README.md.

Run: ``make bench`` (or ``.venv/bin/python bench/proxy_bench.py``). Knobs: BENCH_* env vars.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from benchkit import nginx, openloop, wrk
from benchkit.processes import (
    REPO_ROOT,
    BenchError,
    Supervisor,
    clean_env,
    exit_on_sigterm,
    free_port,
    venv_python,
    wait_http_ok,
)

RESULTS = REPO_ROOT / "bench" / "results" / "proxy.json"
THROUGHPUT_RATIO_TARGET = 0.40
ADDED_P99_TARGET_MS = 3.0
MAX_FAILED_SHARE = 0.001
BUSY_LOAD = 0.5
SATURATED_SHARE = 0.01

# What a whoami-sized Kratos answer looks like (no ', $ or \ — it goes into nginx' config).
UPSTREAM_BODY = json.dumps(
    {
        "id": "8f2b6d1e-3c4a-4f7e-9a51-0c6e2d7b9f10",
        "active": True,
        "expires_at": "2026-11-24T19:30:00Z",
        "authenticated_at": "2026-11-23T19:30:00Z",
        "authenticator_assurance_level": "aal1",
        "identity": {
            "id": "5a1c7e3b-92d4-4b6f-8e0a-7d3f1c2b4e59",
            "schema_id": "default",
            "state": "active",
            "traits": {"email": "bench@example.org", "name": {"first": "Ben", "last": "Ch"}},
        },
    },
    separators=(",", ":"),
)
POST_SIZE = 64 * 1024
_PAD = '{"pad":""}'
POST_BODY = ('{"pad":"' + "x" * (POST_SIZE - len(_PAD)) + '"}').encode("ascii")
JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Workload:
    key: str
    title: str
    method: str
    path: str
    body: bytes


WORKLOADS = (
    Workload("small_get", "small GET", "GET", "/bench/small", b""),
    Workload("post_64k", "64 KiB POST", "POST", "/bench/upload", POST_BODY),
)
TARGETS = ("direct", "kratos_hooks", "nginx")
# Peak pass only: the floor any aiohttp proxy pays, to tell aiohttp's cost from ours.
BARE = "aiohttp_bare"
TARGET_TITLES = {
    "direct": "direct",
    "kratos_hooks": "kratos-hooks",
    "nginx": "nginx",
    BARE: "bare aiohttp",
}


@dataclass(frozen=True, slots=True)
class Knobs:
    seconds: float
    warmup: float
    connections: int
    threads: int
    open_seconds: float
    open_warmup: float
    time_limit: int
    keep_tmp: bool
    bare: bool

    @staticmethod
    def from_env() -> Knobs:
        def number(name: str, default: float) -> float:
            return float(os.environ.get(name, default))

        return Knobs(
            seconds=number("BENCH_SECONDS", 8),
            warmup=number("BENCH_WARMUP", 1),
            connections=int(number("BENCH_CONNECTIONS", 32)),
            threads=int(number("BENCH_THREADS", 1)),
            open_seconds=number("BENCH_OPEN_SECONDS", 6),
            open_warmup=number("BENCH_OPEN_WARMUP", 1),
            time_limit=int(number("BENCH_TIME_LIMIT", 210)),
            keep_tmp=os.environ.get("BENCH_KEEP_TMP", "") not in ("", "0"),
            bare=os.environ.get("BENCH_BARE", "1") not in ("", "0"),
        )

    def peak_targets(self) -> tuple[str, ...]:
        return (*TARGETS, BARE) if self.bare else TARGETS

    def expected_seconds(self) -> float:
        peak = len(WORKLOADS) * len(self.peak_targets()) * (self.seconds + self.warmup)
        open_loop = len(WORKLOADS) * len(TARGETS) * (self.open_seconds + self.open_warmup)
        return peak + open_loop + 5


def say(text: str) -> None:
    print(text, flush=True)


def start_kratos_hooks(supervisor: Supervisor, root: Path, upstream: str) -> tuple[str, int]:
    public, internal = free_port(), free_port()
    env = clean_env(
        {
            "KRATOS_PUBLIC_URL": upstream,
            "PUBLIC_LISTEN": f"127.0.0.1:{public}",
            "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
            "LOG_LEVEL": "WARNING",
            "ACCESS_LOG": "false",
            "WORKERS": "1",
            "SHUTDOWN_TIMEOUT": "1",
            "REDIS_URL": "",
            "RABBITMQ_URL": "",
            "DATABASE_URL": "",
            "SPOOL_DIR": str(root / "spool"),
        }
    )
    child = supervisor.spawn(
        "kratos-hooks", [venv_python(), "-m", "proxy", "serve"], env=env, cwd=REPO_ROOT
    )
    wait_http_ok(child, f"http://127.0.0.1:{internal}/health/alive")
    return f"http://127.0.0.1:{public}", public


def start_bare_proxy(supervisor: Supervisor, upstream: str) -> str:
    port = free_port()
    child = supervisor.spawn(
        "bare-aiohttp",
        [
            venv_python(),
            str(Path(__file__).parent / "benchkit" / "bare_proxy.py"),
            str(port),
            upstream,
        ],
    )
    url = f"http://127.0.0.1:{port}"
    wait_http_ok(child, url + "/")
    return url


def sanity_check(urls: dict[str, str], upstream_root: Path) -> None:
    """Every target answers the upstream's body, and the 64 KiB bodies really reach it."""
    for target, base in urls.items():
        for load in WORKLOADS:
            label = f"{target}-{load.key}"
            request = urllib.request.Request(
                f"{base}{load.path}?bench_sanity={label}",
                data=load.body or None,
                method=load.method,
                headers={"Content-Type": JSON_TYPE} if load.body else {},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    status, answer = response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                status, answer = exc.code, exc.read().decode(errors="replace")
            except (urllib.error.URLError, OSError) as exc:
                raise BenchError(f"{label}: request failed: {exc}") from exc
            if status != 200 or answer != UPSTREAM_BODY:
                raise BenchError(f"{label}: unexpected answer {status} {answer[:300]!r}")
    deadline = time.monotonic() + 3
    expected = {f"{t}-{w.key}": w for t in urls for w in WORKLOADS}
    while True:
        seen = {
            label: (method, length)
            for label, method, length, _ in nginx.sanity_lines(upstream_root)
        }
        if set(expected) <= set(seen) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for label, load in expected.items():
        if label not in seen:
            raise BenchError(f"{label}: the upstream never logged the sanity request")
        method, length = seen[label]
        if method != load.method or length < len(load.body):
            raise BenchError(
                f"{label}: upstream saw {method} with {length} request bytes, "
                f"expected {load.method} with >= {len(load.body)} body bytes"
            )


def saturated(result: openloop.OpenLoopResult) -> bool:
    """Requests had to queue for one of the connections: the target was not keeping up."""
    return result.unfinished > 0 or result.backlogged > SATURATED_SHARE * max(1, result.samples)


def check_failures(what: str, failed: int, total: int) -> None:
    """A stray failure (e.g. a connection cut as wrk stops) is noted; more voids the run."""
    if failed > max(1, total * MAX_FAILED_SHARE):
        raise BenchError(f"{what}: {failed} of {total} requests failed")


def peak_pass(
    knobs: Knobs, urls: dict[str, str], scripts: dict[str, Path]
) -> dict[str, dict[str, wrk.WrkResult]]:
    results: dict[str, dict[str, wrk.WrkResult]] = {}
    for load in WORKLOADS:
        results[load.key] = {}
        for target in knobs.peak_targets():
            url = urls[target] + load.path
            common = {"connections": knobs.connections, "threads": knobs.threads}
            if knobs.warmup > 0:
                wrk.run(url, scripts[load.key], seconds=knobs.warmup, **common)
            result = wrk.run(url, scripts[load.key], seconds=knobs.seconds, **common)
            if result.failed:
                say(f"  note: {load.title} via {target}: failures {result.errors}")
            check_failures(f"{load.title} via {target}", result.failed, result.requests)
            results[load.key][target] = result
            say(
                f"  peak  {load.title:<12} {TARGET_TITLES[target]:<13} "
                f"{result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms"
            )
    return results


def half_load_pass(
    knobs: Knobs, ports: dict[str, int], peaks: dict[str, dict[str, wrk.WrkResult]]
) -> dict[str, dict[str, openloop.OpenLoopResult]]:
    results: dict[str, dict[str, openloop.OpenLoopResult]] = {}
    for load in WORKLOADS:
        rate = peaks[load.key]["kratos_hooks"].rps / 2
        results[load.key] = {}
        for target in TARGETS:
            request = openloop.build_request(
                load.method,
                f"127.0.0.1:{ports[target]}",
                load.path,
                load.body,
                JSON_TYPE if load.body else "",
            )
            result = openloop.run(
                "127.0.0.1",
                ports[target],
                request,
                rate=rate,
                seconds=knobs.open_seconds,
                warmup=knobs.open_warmup,
                connections=knobs.connections,
            )
            check_failures(f"{load.title} via {target}", result.errors, result.samples)
            results[load.key][target] = result
            say(
                f"  half  {load.title:<12} {TARGET_TITLES[target]:<13} "
                f"{result.achieved_rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms"
            )
    return results


def _tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr else ""


def build_report(
    load_at_start: tuple[float, float, float],
    knobs: Knobs,
    peaks: dict[str, dict[str, wrk.WrkResult]],
    halves: dict[str, dict[str, openloop.OpenLoopResult]],
) -> dict[str, Any]:
    workloads: dict[str, Any] = {}
    for load in WORKLOADS:
        peak = peaks[load.key]
        half = halves[load.key]
        ratio = peak["kratos_hooks"].rps / peak["nginx"].rps
        added = half["kratos_hooks"].p99_ms - half["direct"].p99_ms
        workloads[load.key] = {
            "title": load.title,
            "request": {"method": load.method, "path": load.path, "body_bytes": len(load.body)},
            "peak": {t: {**dataclasses.asdict(r), "rps": r.rps} for t, r in peak.items()},
            "throughput_ratio_kratos_hooks_to_bare_aiohttp": (
                peak["kratos_hooks"].rps / peak[BARE].rps if BARE in peak else None
            ),
            "half_load": {
                t: {**dataclasses.asdict(r), "saturated": saturated(r)} for t, r in half.items()
            },
            "throughput_ratio_kratos_hooks_to_nginx": ratio,
            "half_load_rate_rps": half["kratos_hooks"].target_rps,
            "added_p99_ms_kratos_hooks": added,
            "added_p99_ms_nginx": half["nginx"].p99_ms - half["direct"].p99_ms,
            "meets_throughput_target": ratio >= THROUGHPUT_RATIO_TARGET,
            "meets_added_p99_target": added <= ADDED_P99_TARGET_MS,
        }
    return {
        "benchmark": "proxy",
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": list(load_at_start),
            "load_average_at_end": list(os.getloadavg()),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "nginx": _tool_version([nginx.NGINX, "-v"]),
            "wrk": _tool_version([wrk.WRK, "-v"]),
        },
        "settings": {
            **dataclasses.asdict(knobs),
            "kratos_hooks_workers": 1,
            "nginx_worker_processes": 1,
            "upstream_body_bytes": len(UPSTREAM_BODY),
        },
        "targets": {
            "throughput_ratio_min": THROUGHPUT_RATIO_TARGET,
            "added_p99_ms_max": ADDED_P99_TARGET_MS,
        },
        "workloads": workloads,
    }


def render_table(report: dict[str, Any]) -> str:
    rows = [
        f"{'workload':<12} {'target':<13} {'peak req/s':>10} {'p50 ms':>7} {'p99 ms':>7}"
        f" │ {'half-load req/s':>15} {'p50 ms':>7} {'p99 ms':>7} {'+p99 ms':>8}",
    ]
    rows.append("─" * len(rows[0]))
    for load in report["workloads"].values():
        direct_p99 = load["half_load"]["direct"]["p99_ms"]
        for target, peak in load["peak"].items():
            row = (
                f"{load['title']:<12} {TARGET_TITLES[target]:<13} {peak['rps']:>10.0f}"
                f" {peak['p50_ms']:>7.2f} {peak['p99_ms']:>7.2f} │"
            )
            half = load["half_load"].get(target)
            if half is not None:
                added = "" if target == "direct" else f"{half['p99_ms'] - direct_p99:+8.2f}"
                row += (
                    f" {half['achieved_rps']:>15.0f} {half['p50_ms']:>7.2f}"
                    f" {half['p99_ms']:>7.2f} {added:>8}{' *' if half['saturated'] else ''}"
                )
            rows.append(row)
        rows.append("─" * len(rows[0]))
    for load in report["workloads"].values():
        ratio = load["throughput_ratio_kratos_hooks_to_nginx"]
        added = load["added_p99_ms_kratos_hooks"]
        rows.append(
            f"{load['title']}: kratos-hooks/nginx throughput {ratio:.0%} "
            f"(target ≥ {THROUGHPUT_RATIO_TARGET:.0%}: "
            f"{'met' if load['meets_throughput_target'] else 'MISSED'}); "
            f"added p99 at {load['half_load_rate_rps']:.0f} req/s {added:+.2f} ms "
            f"(target ≤ {ADDED_P99_TARGET_MS:g} ms: "
            f"{'met' if load['meets_added_p99_target'] else 'MISSED'})"
        )
    start, end = (
        report["machine"]["load_average_at_start"][0],
        report["machine"]["load_average_at_end"][0],
    )
    rows.append(f"load average (1 min): {start:.2f} at start, {end:.2f} at end")
    if any(h["saturated"] for w in report["workloads"].values() for h in w["half_load"].values()):
        rows.append(
            "* could not keep up with the half-load rate (requests queued for a connection):"
            " its latency there is queueing, not proxying — rerun on an idle machine"
        )
    return "\n".join(rows)


def _alarm(knobs: Knobs) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise BenchError(f"time limit of {knobs.time_limit} s exceeded (BENCH_TIME_LIMIT)")

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(knobs.time_limit)


def run_benchmark(knobs: Knobs, root: Path) -> dict[str, Any]:
    load_at_start = os.getloadavg()
    if load_at_start[0] > BUSY_LOAD:
        say(
            f"note: load average {load_at_start[0]:.2f} before starting — other work is "
            "running; expect noisy figures, p99 most of all"
        )
    with Supervisor(root) as supervisor:
        up_port, proxy_port = free_port(), free_port()
        read_body = tuple(load.path for load in WORKLOADS if load.body)
        upstream = nginx.start_upstream(supervisor, root, up_port, UPSTREAM_BODY, read_body)
        reference = nginx.start(
            supervisor, root, "proxy", nginx.proxy_config(root, proxy_port, up_port), proxy_port
        )
        wait_http_ok(upstream.child, upstream.url + "/")
        wait_http_ok(reference.child, reference.url + "/")
        kh_url, kh_port = start_kratos_hooks(supervisor, root, upstream.url)
        urls = {"direct": upstream.url, "kratos_hooks": kh_url, "nginx": reference.url}
        ports = {"direct": up_port, "kratos_hooks": kh_port, "nginx": proxy_port}
        if knobs.bare:
            urls[BARE] = start_bare_proxy(supervisor, upstream.url)
        sanity_check(urls, root)
        say("sanity: every target relays the upstream's answer; 64 KiB bodies arrive whole")

        scripts = {
            load.key: wrk.write_script(root / f"{load.key}.lua", load.method, load.body, JSON_TYPE)
            for load in WORKLOADS
        }
        say(f"peak throughput: wrk -t{knobs.threads} -c{knobs.connections} -d{knobs.seconds:g}s")
        peaks = peak_pass(knobs, urls, scripts)
        say(f"half of kratos-hooks' peak, open loop, {knobs.connections} connections")
        halves = half_load_pass(knobs, ports, peaks)
        supervisor.ensure_all_running()
        return build_report(load_at_start, knobs, peaks, halves)


def main() -> int:
    knobs = Knobs.from_env()
    exit_on_sigterm()
    _alarm(knobs)
    root = Path(tempfile.mkdtemp(prefix="kh-bench-"))
    say(f"proxy benchmark: about {knobs.expected_seconds():.0f} s (work dir {root})")
    try:
        report = run_benchmark(knobs, root)
    except BenchError as exc:
        print(f"proxy benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        if knobs.keep_tmp:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    say("")
    say(render_table(report))
    say(f"\nwritten to {RESULTS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
