"""Decisions benchmark: what a cached ForwardAuth decision costs — for a Kratos session and for
a personal access token — and how often Kratos and the token store are asked.

Targets, each measured with ``wrk`` (closed loop, same connections) in one run:

- ``bare handler``  a handler answering 200 on the same kratos-hooks internal listener (same
                    process, middleware, metrics and settings): the reference for the ratio;
- ``bare aiohttp``  a bare aiohttp app answering 200 in a process of its own (for scale);
- ``cache hit``     ``/decisions`` for one session token, cached (the normal case);
- ``token hit``     ``/decisions`` for one personal access token, cached, on the same instance
                    (a ``token`` rule with a ``scopes`` authorizer);
- ``cache miss``    ``/decisions`` on an instance with ``DECISIONS_CACHE_TTL=0``: every
                    decision asks the Kratos stand-in's ``/sessions/whoami``;
- ``token miss``    a PAT on an instance with ``TOKENS_CACHE_TTL=0``: every decision reads the
                    token store (the embedded SQLite file) and asks Kratos' admin API whether
                    the owner is active;
- ``whoami``        the stand-in's ``/sessions/whoami`` asked directly (what a miss must pay).

The bare handler, the session cache hit and the token hit get the same request (the token
rides in a header the other two ignore) and take turns in ``BENCH_ROUNDS`` rounds (default 9;
the order rotates); each ratio a target is about is the median of the rounds' ratios.

Also counted: Kratos calls per 1,000 cached decisions of one session (the target is 1 per
TTL) and store queries per 1,000 cached decisions of one token.
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
from collections.abc import Callable
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
TOKEN_RATIO_TARGET = 0.95  # token cache hit within 5 % of a session cache hit
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

[[rules]]
id = "api"
paths = ["/api/**"]
authenticators = ["token"]
authorizer = { type = "scopes", scopes = ["read:users"] }
"""
FORWARDED = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "app.example.com",
    "X-Forwarded-Uri": "/app/dashboard?tab=1",
}


# --- child modes: this file is also the stand-in and the bare peer --------------------------


def serve_standin(port: int, admin_port: int, token_file: Path) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    import asyncio

    from aiohttp import web

    from tests.kratos_standin import StandinState, create_admin_app, create_public_app

    state = StandinState()
    identity = state.add_identity("bench@example.org", "bench password")
    token, _ = state.create_session(identity["id"])
    app = create_public_app(state)

    async def calls(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "whoami": state.count("GET", "/sessions/whoami"),
                "admin": state.count("GET", f"/admin/identities/{identity['id']}"),
            }
        )

    app.router.add_get("/__bench/calls", calls)
    token_file.write_text(f"{token} {identity['id']}")
    freeze_heap()  # the shared upstream of both targets must not pause for its GC

    async def serve() -> None:
        runners = []
        for made, at in ((app, port), (create_admin_app(state), admin_port)):
            runner = web.AppRunner(made, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", at).start()
            runners.append(runner)
        await asyncio.Event().wait()

    asyncio.run(serve())


def mint_pat(sqlite_file: Path, owner: str) -> str:
    """A personal access token in the store file the instances will open."""
    sys.path.insert(0, str(REPO_ROOT))
    import asyncio

    from config import load_settings
    from handlers.credentials.service import Credentials
    from proxy.kernel.bus import Bus

    settings = load_settings(env={"TOKENS_SQLITE_FILE": str(sqlite_file)})

    async def mint() -> str:
        credentials = Credentials(settings, None, Bus())
        try:
            made = await credentials.issue(
                "pat",
                owner=owner,
                name="bench",
                scopes=("read:users",),
                expires_at=time.time() + 86400,
                created_by="bench",
                origin="cli",
            )
        finally:
            await credentials.close()
        return made.secret

    return asyncio.run(mint())


def serve_bare(port: int) -> None:
    from aiohttp import web

    async def ok(_: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# kratos-hooks itself, with one extra internal route answering 200: the bare-handler peer.
# The internal app's factory is wrapped wherever the listeners look it up.
SERVE_WITH_BARE_ROUTE = """
import sys
from aiohttp import web
import proxy.app, proxy.server
async def ok(request):
    return web.Response(status=200)
made = proxy.app.create_internal_app
def with_bare_route(shared):
    app = made(shared)
    app.router.add_get("/__bench/ok", ok)
    return app
proxy.app.create_internal_app = with_bare_route
if hasattr(proxy.server, "create_internal_app"):
    proxy.server.create_internal_app = with_bare_route
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


def whoami_calls(standin: str, kind: str = "whoami") -> int:
    with urllib.request.urlopen(standin + "/__bench/calls", timeout=5) as response:
        return int(json.load(response)[kind])


def store_queries(decisions_url: str) -> float:
    """The token look-ups and batched writes one instance made (its /metrics)."""
    url = decisions_url.replace("/decisions", "/metrics")
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kratos_hooks_tokens_store_queries_total{") and (
            'op="by_hash"' in line or 'op="touch"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


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


def kratos_hooks(
    sup: Supervisor, name: str, standin: str, admin: str, rules: Path, **env: str
) -> str:
    internal = free_port()
    overrides = {
        "PUBLIC_LISTEN": f"127.0.0.1:{free_port()}",
        "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
        "KRATOS_PUBLIC_URL": standin,
        "KRATOS_ADMIN_URL": admin,
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


def rotate(index: int, runs: dict[str, Callable[[], wrk.WrkResult]]) -> dict[str, wrk.WrkResult]:
    """Run each target once, the order rotating with ``index`` (a machine that slows down
    during the run does not always favour the same target)."""
    names = list(runs)
    shift = index % len(names)
    return {name: runs[name]() for name in names[shift:] + names[:shift]}


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> int:
    exit_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix="kh-decisions-bench-"))
    try:
        with Supervisor(work) as sup:
            me = str(Path(__file__).resolve())
            standin_port, admin_port, bare_port = free_port(), free_port(), free_port()
            token_file = work / "token"
            standin_child = sup.spawn(
                "standin",
                [
                    venv_python(),
                    me,
                    "--standin",
                    str(standin_port),
                    str(admin_port),
                    str(token_file),
                ],
            )
            standin = f"http://127.0.0.1:{standin_port}"
            admin = f"http://127.0.0.1:{admin_port}"
            wait_http_ok(standin_child, standin + "/health/alive")
            bare_child = sup.spawn("bare", [venv_python(), me, "--bare", str(bare_port)])
            bare = f"http://127.0.0.1:{bare_port}/"
            wait_http_ok(bare_child, bare)
            rules = work / "rules.toml"
            rules.write_text(RULES)
            token, owner = token_file.read_text().split()
            store = work / "tokens.sqlite3"
            pat = mint_pat(store, owner)
            common = {"TOKENS_SQLITE_FILE": str(store)}
            cached = kratos_hooks(sup, "kh-cached", standin, admin, rules, **common)
            uncached = kratos_hooks(
                sup, "kh-uncached", standin, admin, rules, **common,
                DECISIONS_CACHE_TTL="0", DECISIONS_NEGATIVE_CACHE_TTL="0", TOKENS_CACHE_TTL="0",
            )  # fmt: skip
            # The token rides along in every request: the session rule and the bare handler
            # ignore it, so all three targets parse the same headers.
            decision = {**FORWARDED, "X-Session-Token": token, "X-API-Key": pat}
            token_decision = {**decision, "X-Forwarded-Uri": "/api/users/1"}
            before = 0
            for url in (uncached, cached):
                # Counted from the cached instance's very first decision: the call that
                # fills its cache included.
                before = whoami_calls(standin)
                started = time.monotonic()
                status, headers = get(url, decision)
                if status != 200 or "X-User-ID" not in headers:
                    raise BenchError(f"sanity: {url} answered {status} without X-User-ID")
                status, headers = get(url, token_decision)
                if status != 200 or headers.get("X-User-ID") != owner:
                    raise BenchError(f"sanity: {url} answered {status} to the token")
            queries_before = store_queries(cached)

            hit_lua = script(work / "hit.lua", decision)
            token_lua = script(work / "token.lua", token_decision)
            same = cached.replace("/decisions", "/__bench/ok")
            rounds: list[dict[str, wrk.WrkResult]] = []
            for index in range(ROUNDS):
                rounds.append(
                    rotate(
                        index,
                        {
                            "bare handler": lambda: measure("bare handler", same, hit_lua),
                            "cache hit": lambda: measure("cache hit", cached, hit_lua),
                            "token hit": lambda: measure("token hit", cached, token_lua),
                        },
                    )
                )
            after = whoami_calls(standin)
            span = time.monotonic() - started
            token_queries = store_queries(cached) - queries_before
            # The sanity request and the warm-ups are decisions too but not in the requests
            # counted: leaving them out overstates the calls per decision, never understates.
            hit_decisions = sum(r["cache hit"].requests for r in rounds)
            token_decisions = sum(r["token hit"].requests for r in rounds)
            results = {
                name: pooled([r[name] for r in rounds])
                for name in ("bare handler", "cache hit", "token hit")
            }
            results["bare aiohttp"] = measure("bare aiohttp", bare, script(work / "bare.lua", {}))
            per_round = [
                (r["bare handler"].rps, r["cache hit"].rps, r["token hit"].rps) for r in rounds
            ]
            ratios = sorted(hit / b for b, hit, _ in per_round)
            token_ratios = sorted(t / hit for _, hit, t in per_round)
            miss_before = whoami_calls(standin)
            miss = measure("cache miss", uncached, script(work / "miss.lua", decision))
            miss_calls = whoami_calls(standin) - miss_before
            results["cache miss"] = miss
            admin_before = whoami_calls(standin, "admin")
            results["token miss"] = measure("token miss", uncached, token_lua)
            token_miss_admin = whoami_calls(standin, "admin") - admin_before
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
    token_ratio = token_ratios[len(token_ratios) // 2]
    miss_ratio = results["cache miss"].rps / results["whoami"].rps
    per_thousand = (after - before) * 1000 / max(1, hit_decisions)
    queries_per_thousand = token_queries * 1000 / max(1, token_decisions)
    verdict = "met" if ratio >= HIT_RATIO_TARGET else "MISSED"
    token_verdict = "met" if token_ratio >= TOKEN_RATIO_TARGET else "MISSED"
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
        f"token-hit decisions / session cache hits: {token_ratio:.1%}, median of {ROUNDS} "
        f"rounds ({', '.join(f'{r:.1%}' for r in token_ratios)}) "
        f"(target ≥ {TOKEN_RATIO_TARGET:.0%}: {token_verdict}); store queries per 1,000 "
        f"cached token decisions: {queries_per_thousand:.4f} ({token_queries:.0f} for "
        f"{token_decisions}); token misses asked Kratos' admin API {token_miss_admin} times "
        f"for {results['token miss'].requests} decisions"
    )
    print(
        "rounds (bare handler / cache hit / token hit req/s, in the order measured): "
        + ", ".join(f"{b:.0f} / {h:.0f} / {t:.0f}" for b, h, t in per_round)
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
                "token_hit_to_session_hit_ratio": token_ratio,
                "token_hit_to_session_hit_ratio_per_round": token_ratios,
                "meets_token_ratio_target": token_ratio >= TOKEN_RATIO_TARGET,
                "rounds_bare_hit_token_rps": per_round,
                "meets_hit_ratio_target": ratio >= HIT_RATIO_TARGET,
                "miss_to_whoami_ratio": miss_ratio,
                "kratos_calls_per_1000_cached_decisions": per_thousand,
                "store_queries_per_1000_cached_token_decisions": queries_per_thousand,
                "cached_kratos_calls": after - before,
                "cached_span_seconds": span,
                "uncached_whoami_calls_incl_warmup": miss_calls,
                "token_miss_kratos_admin_calls_incl_warmup": token_miss_admin,
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
        serve_standin(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--bare":
        serve_bare(int(sys.argv[2]))
    else:
        try:
            sys.exit(main())
        except BenchError as exc:
            print(f"decisions bench failed: {exc}", file=sys.stderr)
            sys.exit(1)
