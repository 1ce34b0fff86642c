"""Login guard benchmark: what the guard adds to a login submission.

Two kratos-hooks instances in front of one Kratos stand-in (password check delay 0), measured
in the same run with ``wrk`` (closed loop, same connections), interleaved in rounds so drift
affects both alike:

- ``plain proxy``  ``BACKOFF_ENABLED=false``: the login POST streams through the forwarder;
- ``guarded``      the guard with Redis: body read, three buckets judged in one Lua call,
                   Kratos' answer read and classified, one more Lua call, answer relayed.

Every POST is a correct password on one API flow (a success: the full path, and wrk counts
no 4xx as errors); the raw login rate is off and the free allowances raised so that all
connections may be in flight at once and nothing is refused.

Two passes, as in the proxy benchmark:

- **peak** (closed loop, ``wrk``): the most each target does. At saturation latency is
  queueing (all connections in flight), so its p99 gap mostly restates the throughput gap;
- **fixed load** (open loop, ``benchkit/openloop.py``): both targets at the same fixed rates
  — a quarter, three eighths and half of the plain proxy's peak by default — requests
  released on schedule, the two targets alternating for ``BENCH_OPEN_ROUNDS`` rounds (the
  gap reported is the median of the rounds' gaps). The p99 difference here is what the
  guard adds to a login a user makes — the figure the target is about. On a 2-core machine
  the stand-in, both proxies, Redis and the load generator share the cores: at half load
  the machine itself is near its knee, and the tail shows CPU contention as much as the
  guard.

Target (issue 4): the guard adds at most 2 ms at p99. Run: ``.venv/bin/python
bench/guard_bench.py`` (``make bench`` runs it). Knobs: BENCH_SECONDS, BENCH_WARMUP,
BENCH_CONNECTIONS, BENCH_ROUNDS, BENCH_OPEN_SECONDS, BENCH_OPEN_ROUNDS, BENCH_LOAD_SHARES,
BENCH_REDIS_URL, BENCH_KEEP_TMP.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path
from statistics import median

from benchkit import openloop, wrk
from benchkit.processes import (
    REPO_ROOT,
    BenchError,
    Supervisor,
    clean_env,
    exit_on_sigterm,
    free_port,
    freeze_heap,
    venv_python,
    wait_http_ok,
)

RESULTS = REPO_ROOT / "bench" / "results" / "guard.json"
ADDED_P99_TARGET_MS = 2.0
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
OPEN_SECONDS = float(os.environ.get("BENCH_OPEN_SECONDS", "8"))
# Each fixed load is run this many times per target, the two alternating (which goes first
# too): one 8-second run's p99 on a shared 2-core machine swings by milliseconds.
OPEN_ROUNDS = max(1, int(os.environ.get("BENCH_OPEN_ROUNDS", "3")))
# Fixed loads, as shares of the plain proxy's peak, at which both targets are measured.
LOAD_SHARES = tuple(
    float(share) for share in os.environ.get("BENCH_LOAD_SHARES", "0.25,0.375,0.5").split(",")
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
EMAIL, PASSWORD = "bench@example.org", "bench password"


def serve_standin(port: int) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from aiohttp import web

    from tests.kratos_standin import StandinState, create_public_app

    state = StandinState(hash_delay=0.0)
    state.add_identity(EMAIL, PASSWORD)
    app = create_public_app(state)

    async def forget(_: web.Request) -> web.Response:
        # Keep the stand-in's own bookkeeping from growing into the measurement.
        state.sessions.clear()
        state.reset_calls()
        return web.json_response({})

    app.router.add_post("/__bench/forget", forget)
    freeze_heap()  # the shared upstream of both targets must not pause for its GC
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def kratos_hooks(sup: Supervisor, name: str, standin: str, **env: str) -> str:
    public, internal = free_port(), free_port()
    overrides = {
        "PUBLIC_LISTEN": f"127.0.0.1:{public}",
        "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
        "KRATOS_PUBLIC_URL": standin,
        "WORKERS": "1",
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"kh-bench-{uuid.uuid4().hex[:8]}:",
        "BACKOFF_SECRET": "bench",
        "RATE_LIMIT_LOGIN": "0",
        # All connections log one account in from one address at once: let them all be in
        # flight together (the defaults allow five), so every POST takes the full path.
        "BACKOFF_PAIR_FREE": "1000",
        "BACKOFF_IDENTIFIER_FREE": "1000",
        **env,
    }
    child = sup.spawn(
        name, [venv_python(), "-m", "proxy", "serve"], env=clean_env(overrides), cwd=REPO_ROOT
    )
    wait_http_ok(child, f"http://127.0.0.1:{internal}/health/alive")
    return f"http://127.0.0.1:{public}"


def post(url: str, body: bytes) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def api_flow(base: str) -> str:
    with urllib.request.urlopen(base + "/self-service/login/api", timeout=5) as response:
        return str(json.load(response)["id"])


def measure(name: str, url: str, lua: Path) -> wrk.WrkResult:
    if WARMUP > 0:
        wrk.run(url, lua, seconds=WARMUP, connections=CONNECTIONS)
    result = wrk.run(url, lua, seconds=SECONDS, connections=CONNECTIONS)
    if result.failed:
        raise BenchError(f"{name}: {result.failed} failed requests {result.errors}")
    return result


def fixed_load(
    name: str, base: str, flow: str, body: bytes, rate: float
) -> openloop.OpenLoopResult:
    port = int(base.rsplit(":", 1)[1])
    request = openloop.build_request(
        "POST", f"127.0.0.1:{port}", f"/self-service/login?flow={flow}", body, "application/json"
    )
    result = openloop.run(
        "127.0.0.1",
        port,
        request,
        rate=rate,
        seconds=OPEN_SECONDS,
        warmup=WARMUP,
        connections=CONNECTIONS,
    )
    if result.errors:
        raise BenchError(f"{name} at {rate:.0f} req/s: {result.errors} failed requests")
    return result


def main() -> int:
    exit_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="kh-guard-bench-"))
    runs: dict[str, list[wrk.WrkResult]] = {"plain proxy": [], "guarded": []}
    fixed: dict[float, dict[str, list[openloop.OpenLoopResult]]] = {}
    try:
        with Supervisor(work) as sup:
            port = free_port()
            child = sup.spawn(
                "standin", [venv_python(), str(Path(__file__)), "--standin", str(port)]
            )
            standin = f"http://127.0.0.1:{port}"
            wait_http_ok(child, standin + "/health/alive")
            targets = {
                "plain proxy": kratos_hooks(sup, "kh-plain", standin, BACKOFF_ENABLED="false"),
                "guarded": kratos_hooks(sup, "kh-guarded", standin),
            }
            flow = api_flow(standin)
            body = json.dumps({"method": "password", "identifier": EMAIL, "password": PASSWORD})
            lua = wrk.write_script(work / "login.lua", "POST", body.encode(), "application/json")
            for name, base in targets.items():
                status, answer = post(f"{base}/self-service/login?flow={flow}", body.encode())
                if status != 200 or "session_token" not in answer:
                    raise BenchError(f"sanity: {name} answered {status} to a correct password")
            for _ in range(ROUNDS):
                for name, base in targets.items():
                    runs[name].append(measure(name, f"{base}/self-service/login?flow={flow}", lua))
                    post(standin + "/__bench/forget", b"{}")
            peak = sum(r.rps for r in runs["plain proxy"]) / len(runs["plain proxy"])
            for share in LOAD_SHARES:
                fixed[share] = {name: [] for name in targets}
                for index in range(OPEN_ROUNDS):
                    order = list(targets.items())
                    for name, base in order if index % 2 == 0 else reversed(order):
                        result = fixed_load(name, base, flow, body.encode(), peak * share)
                        fixed[share][name].append(result)
                        post(standin + "/__bench/forget", b"{}")
            sup.ensure_all_running()
    finally:
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)

    summary = {
        name: {
            "rps": sum(r.rps for r in results) / len(results),
            "p50_ms": sorted(r.p50_ms for r in results)[len(results) // 2],
            "p99_ms": sorted(r.p99_ms for r in results)[len(results) // 2],
        }
        for name, results in runs.items()
    }
    print(f"{'login POST':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in summary.items():
        print(f"{name:<12} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}  (peak)")
    added: dict[float, float] = {}
    gaps: dict[float, list[float]] = {}
    medians: dict[float, dict[str, dict[str, float]]] = {}
    for share, results in fixed.items():
        medians[share] = {}
        for name, runs_at_share in results.items():
            row = medians[share][name] = {
                "rps": median([r.achieved_rps for r in runs_at_share]),
                "p50_ms": median([r.p50_ms for r in runs_at_share]),
                "p99_ms": median([r.p99_ms for r in runs_at_share]),
            }
            print(
                f"{name:<12} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}  "
                f"({share:.0%} of the plain proxy's peak, median of {OPEN_ROUNDS})"
            )
        pairs = zip(results["guarded"], results["plain proxy"], strict=True)
        gaps[share] = [guarded.p99_ms - plain.p99_ms for guarded, plain in pairs]
        added[share] = median(gaps[share])
    saturated = summary["guarded"]["p99_ms"] - summary["plain proxy"]["p99_ms"]
    for share, extra in added.items():
        rate = fixed[share]["guarded"][0].target_rps
        verdict = "met" if extra <= ADDED_P99_TARGET_MS else "MISSED"
        rounds = ", ".join(f"{gap:+.2f}" for gap in gaps[share])
        print(
            f"at {rate:.0f} req/s ({share:.0%} of peak) the guard adds {extra:.2f} ms at p99, "
            f"median of {OPEN_ROUNDS} rounds ({rounds}) "
            f"(target <= {ADDED_P99_TARGET_MS} ms: {verdict})"
        )
    print(
        f"at saturation ({CONNECTIONS} connections, {ROUNDS} rounds) "
        f"the p99 gap is {saturated:.2f} ms"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "targets": summary,
                "fixed_load": {str(share): rows for share, rows in medians.items()},
                "added_p99_ms": {str(share): extra for share, extra in added.items()},
                "added_p99_ms_per_round": {str(share): gap for share, gap in gaps.items()},
                "saturated_p99_gap_ms": saturated,
                "settings": {
                    "seconds": SECONDS,
                    "open_seconds": OPEN_SECONDS,
                    "open_rounds": OPEN_ROUNDS,
                    "connections": CONNECTIONS,
                    "rounds": ROUNDS,
                    "load_shares": LOAD_SHARES,
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--standin":
        serve_standin(int(sys.argv[2]))
    else:
        try:
            sys.exit(main())
        except BenchError as exc:
            print(f"guard bench failed: {exc}", file=sys.stderr)
            sys.exit(1)
