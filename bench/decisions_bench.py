"""Decisions benchmark: what a cached ForwardAuth decision costs, and how often Kratos is asked.

Five targets, each measured with ``wrk`` (closed loop, same connections) in one run:

- ``bare handler``  a handler answering 200 on the same kratos-hooks internal listener (same
                    process, middleware, metrics and settings): the reference for the ratio;
- ``bare aiohttp``  a bare aiohttp app answering 200 in a process of its own (for scale);
- ``cache hit``     ``/decisions`` for one session token, cached (the normal case);
- ``cache miss``    ``/decisions`` on an instance with ``DECISIONS_CACHE_TTL=0``: every
                    decision asks the Kratos stand-in's ``/sessions/whoami``;
- ``whoami``        the stand-in's ``/sessions/whoami`` asked directly (what a miss must pay).

The bare handler and the cache hit get the same request and alternate in ``BENCH_ROUNDS``
rounds (default 9; which goes first alternates too); the ratio the target is about is the
median of the rounds' ratios.

Also counted: Kratos calls per 1,000 cached decisions of one session (the target is 1 per TTL).
Run: ``.venv/bin/python bench/decisions_bench.py`` (``make bench`` runs it). Knobs:
BENCH_SECONDS, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_THREADS, BENCH_ROUNDS, BENCH_KEEP_TMP.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchkit import wrk
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

RESULTS = REPO_ROOT / "bench" / "results" / "decisions.json"
HIT_RATIO_TARGET = 0.70
CACHE_TTL = 60.0  # DECISIONS_CACHE_TTL's default, which the cached instance runs with
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
# Bare handler and cache hit alternate this many times (each run BENCH_SECONDS long).
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "9")))

RULES = """
[[rules]]
id = "app"
paths = ["/app/**"]
authenticators = ["session_token"]
authorizer = "allow"
"""
FORWARDED = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/app/dashboard?tab=1",
}


# --- child modes: this file is also the stand-in and the bare peer --------------------------


def serve_standin(port: int, token_file: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from aiohttp import web

    from tests.kratos_standin import StandinState, create_public_app

    state = StandinState()
    identity = state.add_identity("bench@example.org", "bench password")
    token, _ = state.create_session(identity["id"])
    app = create_public_app(state)

    async def calls(_: web.Request) -> web.Response:
        return web.json_response({"whoami": state.count("GET", "/sessions/whoami")})

    app.router.add_get("/__bench/calls", calls)
    token_file.write_text(token)
    freeze_heap()  # the shared upstream of both targets must not pause for its GC
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def ok(_: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# kratos-hooks itself, with one extra internal route answering 200: the bare-handler peer.
SERVE_WITH_BARE_ROUTE = """
import sys
from aiohttp import web
import proxy.app
async def ok(request):
    return web.Response(status=200)
proxy.app.INTERNAL_FEATURES.append(lambda app, health: app.router.add_get("/__bench/ok", ok))
from proxy.cli import main
sys.exit(main(["serve"]))
"""


# --- the benchmark -----------------------------------------------------------------------


def script(path: Path, headers: dict[str, str]) -> Path:
    wrk.write_script(path, "GET", b"", "")
    lines = [f'wrk.headers["{name}"] = "{value}"' for name, value in headers.items()]
    path.write_text("\n".join(lines) + "\n" + path.read_text())
    return path


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, dict(response.headers)


def whoami_calls(standin: str) -> int:
    with urllib.request.urlopen(standin + "/__bench/calls", timeout=5) as response:
        return int(json.load(response)["whoami"])


def measure(name: str, url: str, lua: Path) -> wrk.WrkResult:
    if WARMUP > 0:
        wrk.run(url, lua, seconds=WARMUP, connections=CONNECTIONS, threads=THREADS)
    result = wrk.run(url, lua, seconds=SECONDS, connections=CONNECTIONS, threads=THREADS)
    if result.failed:
        raise BenchError(f"{name}: {result.failed} failed requests {result.errors}")
    return result


def pooled(runs: list[wrk.WrkResult]) -> wrk.WrkResult:
    """Several runs of one target as one row: all their requests over all their time, and
    the median run's latencies."""
    middle = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    errors: dict[str, int] = {}
    for run in runs:
        for kind, count in run.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return dataclasses.replace(
        middle,
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        errors=errors,
    )


def kratos_hooks(sup: Supervisor, name: str, standin: str, rules: Path, **env: str) -> str:
    internal = free_port()
    overrides = {
        "PUBLIC_LISTEN": f"127.0.0.1:{free_port()}",
        "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
        "KRATOS_PUBLIC_URL": standin,
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "DECISIONS_RULES_FILE": str(rules),
        "WORKERS": "1",
        "ACCESS_LOG": "false",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": "",
        **env,
    }
    argv = [venv_python(), "-c", SERVE_WITH_BARE_ROUTE]
    child = sup.spawn(name, argv, env=clean_env(overrides), cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{internal}"
    wait_http_ok(child, base + "/health/alive")
    return base + "/decisions"


def main() -> int:
    exit_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="kh-decisions-bench-"))
    try:
        with Supervisor(work) as sup:
            me = str(Path(__file__).resolve())
            standin_port, bare_port = free_port(), free_port()
            token_file = work / "token"
            standin_child = sup.spawn(
                "standin", [venv_python(), me, "--standin", str(standin_port), str(token_file)]
            )
            standin = f"http://127.0.0.1:{standin_port}"
            wait_http_ok(standin_child, standin + "/health/alive")
            bare_child = sup.spawn("bare", [venv_python(), me, "--bare", str(bare_port)])
            bare = f"http://127.0.0.1:{bare_port}/"
            wait_http_ok(bare_child, bare)
            rules = work / "rules.toml"
            rules.write_text(RULES)
            cached = kratos_hooks(sup, "kh-cached", standin, rules)
            uncached = kratos_hooks(
                sup, "kh-uncached", standin, rules,
                DECISIONS_CACHE_TTL="0", DECISIONS_NEGATIVE_CACHE_TTL="0",
            )  # fmt: skip
            token = token_file.read_text().strip()
            decision = {**FORWARDED, "X-Session-Token": token}
            before = 0
            for url in (uncached, cached):
                # Counted from the cached instance's very first decision: the call that
                # fills its cache included.
                before = whoami_calls(standin)
                started = time.monotonic()
                status, headers = get(url, decision)
                if status != 200 or "X-User-ID" not in headers:
                    raise BenchError(f"sanity: {url} answered {status} without X-User-ID")

            # The bare handler gets the very request a decision gets (same headers): only
            # what the endpoint does differs. The two alternate in rounds, so drift on a
            # shared machine touches both alike; the ratio is the median of the rounds'.
            hit_lua = script(work / "hit.lua", decision)
            same = cached.replace("/decisions", "/__bench/ok")
            rounds: list[tuple[wrk.WrkResult, wrk.WrkResult]] = []
            for index in range(ROUNDS):
                # Which goes first alternates (ABBA), so a machine that slows or speeds up
                # during the run does not always favour the same one.
                if index % 2 == 0:
                    bare_run = measure("bare handler", same, hit_lua)
                    hit_run = measure("cache hit", cached, hit_lua)
                else:
                    hit_run = measure("cache hit", cached, hit_lua)
                    bare_run = measure("bare handler", same, hit_lua)
                rounds.append((bare_run, hit_run))
            after = whoami_calls(standin)
            span = time.monotonic() - started
            # The sanity request and the warm-ups are decisions too but not in the requests
            # counted: leaving them out overstates the calls per decision, never understates.
            hit_decisions = sum(hit.requests for _, hit in rounds)
            results = {
                "bare handler": pooled([bare_run for bare_run, _ in rounds]),
                "bare aiohttp": measure("bare aiohttp", bare, script(work / "bare.lua", {})),
                "cache hit": pooled([hit for _, hit in rounds]),
            }
            per_round = [(bare_run.rps, hit.rps) for bare_run, hit in rounds]
            ratios = sorted(hit / bare_rps for bare_rps, hit in per_round)
            miss_before = whoami_calls(standin)
            miss = measure("cache miss", uncached, script(work / "miss.lua", decision))
            miss_calls = whoami_calls(standin) - miss_before
            results["cache miss"] = miss
            results["whoami"] = measure(
                "whoami", standin + "/sessions/whoami",
                script(work / "whoami.lua", {"X-Session-Token": token}),
            )  # fmt: skip
            sup.ensure_all_running()
    finally:
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)

    print(f"{'target':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, result in results.items():
        print(f"{name:<14} {result.rps:>9.0f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f}")
    ratio = ratios[len(ratios) // 2]
    miss_ratio = results["cache miss"].rps / results["whoami"].rps
    per_thousand = (after - before) * 1000 / max(1, hit_decisions)
    verdict = "met" if ratio >= HIT_RATIO_TARGET else "MISSED"
    print(
        f"cache-hit decisions / bare handler on the same listener: {ratio:.1%}, median of "
        f"{ROUNDS} rounds ({', '.join(f'{r:.1%}' for r in ratios)}) "
        f"(target ≥ {HIT_RATIO_TARGET:.0%}: {verdict}); "
        f"cache-miss decisions / direct whoami: {miss_ratio:.0%}; "
        f"Kratos calls per 1,000 cached decisions: {per_thousand:.3f} "
        f"({after - before} for {hit_decisions} decisions over {span:.0f} s, with the default "
        f"{CACHE_TTL:.0f} s cache TTL)"
    )
    print(
        "rounds (bare handler / cache hit req/s, in the order run): "
        + ", ".join(f"{bare_rps:.0f} / {hit:.0f}" for bare_rps, hit in per_round)
    )
    print(
        f"uncached: {miss_calls} whoami calls for the {miss.requests} decisions of the run "
        "and its warm-up (concurrent identical look-ups share one call)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "targets": {
                    name: {
                        "rps": r.rps,
                        "p50_ms": r.p50_ms,
                        "p99_ms": r.p99_ms,
                        "p90_ms": r.p90_ms,
                        "requests": r.requests,
                        "errors": r.errors,
                    }
                    for name, r in results.items()
                },
                "hit_to_bare_ratio": ratio,
                "hit_to_bare_ratio_per_round": ratios,
                "rounds_bare_and_hit_rps": per_round,
                "meets_hit_ratio_target": ratio >= HIT_RATIO_TARGET,
                "miss_to_whoami_ratio": miss_ratio,
                "kratos_calls_per_1000_cached_decisions": per_thousand,
                "cached_kratos_calls": after - before,
                "cached_span_seconds": span,
                "uncached_whoami_calls_incl_warmup": miss_calls,
                "settings": {
                    "seconds": SECONDS,
                    "rounds": ROUNDS,
                    "connections": CONNECTIONS,
                    "threads": THREADS,
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--standin":
        serve_standin(int(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--bare":
        serve_bare(int(sys.argv[2]))
    else:
        try:
            sys.exit(main())
        except BenchError as exc:
            print(f"decisions bench failed: {exc}", file=sys.stderr)
            sys.exit(1)
