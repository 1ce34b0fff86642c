"""A cached ForwardAuth decision with the settings a user gets, beside a bare aiohttp app,
each pinned to one core — the internal listener's figure of issue 15.

Targets, each a process of its own on CPU 0 (``taskset``); the Kratos stand-in, wrk and this
script on CPU 1:

- ``bare aiohttp``  an aiohttp app answering 200 to everything, nothing else;
- ``cache hit``     ``/decisions`` for one session token, cached, kratos-hooks with the
                    defaults: the JSON access log on, ``LOG_LEVEL=INFO``, ``REDIS_URL`` set (the
                    local Redis, a key prefix of this run), one worker;
- ``no access log`` the same with ``ACCESS_LOG=false``: what the access line costs a decision
                    (the target's ratio is the defaults' one).

They alternate over ``BENCH_ROUNDS`` rounds (which goes first alternates too); the ratio is
the median of the rounds' ratios, and each target's CPU per request is its process's user +
system time over the requests answered. Run: ``.venv/bin/python bench/decisions_pinned_bench.py``
(``make bench`` runs it). Knobs: BENCH_SECONDS, BENCH_WARMUP, BENCH_CONNECTIONS, BENCH_ROUNDS.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

from benchkit import wrk
from benchkit.pinning import LOAD_CPUS, PROXY_CPUS, cpu_seconds, cpus_available, pin_self, pinned
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
from decisions_bench import FORWARDED, RULES, get, script

TARGET = 0.85
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "7")))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def measure(url: str, lua: Path, pid: int) -> tuple[wrk.WrkResult, float]:
    """One run: wrk's figures and the target's µs of CPU per request."""
    wrk.run(url, lua, seconds=WARMUP, connections=CONNECTIONS)
    before = cpu_seconds(pid)
    result = wrk.run(url, lua, seconds=SECONDS, connections=CONNECTIONS)
    used = cpu_seconds(pid) - before
    if result.failed:
        raise BenchError(f"{url}: {result.failed} failed requests {result.errors}")
    return result, used / max(1, result.requests) * 1e6


def main() -> int:
    exit_on_sigterm()
    if cpus_available() < 2:
        raise BenchError("needs two CPUs: the target on one, the load on the other")
    pin_self(LOAD_CPUS)  # wrk and the stand-in inherit CPU 1
    work = Path(tempfile.mkdtemp(prefix="kh-decisions-pinned-"))
    me = str(Path(__file__).resolve().parent / "decisions_bench.py")
    try:
        with Supervisor(work) as sup:
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
            wait_http_ok(standin_child, standin + "/health/alive")
            bare_child = sup.spawn(
                "bare", pinned(PROXY_CPUS, [venv_python(), me, "--bare", str(bare_port)])
            )
            bare = f"http://127.0.0.1:{bare_port}/app/dashboard"
            wait_http_ok(bare_child, bare)
            rules = work / "rules.toml"
            rules.write_text(RULES)
            env = {
                "KRATOS_PUBLIC_URL": standin,
                "KRATOS_ADMIN_URL": f"http://127.0.0.1:{admin_port}",
                "TRUSTED_PROXIES": "127.0.0.1/32",
                "DECISIONS_RULES_FILE": str(rules),
                "REDIS_URL": REDIS_URL,
                "REDIS_KEY_PREFIX": f"kh-bench-{uuid.uuid4().hex[:8]}:",
                "TOKENS_SQLITE_FILE": str(work / "tokens.sqlite3"),
            }
            services = {}
            for name, extra in (("kratos-hooks", {}), ("no-access-log", {"ACCESS_LOG": "false"})):
                internal = free_port()
                port_env = {
                    "PUBLIC_LISTEN": f"127.0.0.1:{free_port()}",
                    "INTERNAL_LISTEN": f"127.0.0.1:{internal}",
                }
                child = sup.spawn(
                    name,
                    pinned(PROXY_CPUS, [venv_python(), "-m", "proxy", "serve"]),
                    env=clean_env({**env, **port_env, **extra}),
                    cwd=REPO_ROOT,
                )
                url = f"http://127.0.0.1:{internal}/decisions"
                wait_http_ok(child, url.replace("/decisions", "/health/alive"))
                services[name] = (url, child)
            decisions, kh = services["kratos-hooks"]
            quiet_url, quiet = services["no-access-log"]
            token = token_file.read_text().split()[0]
            decision = {**FORWARDED, "X-Session-Token": token}
            status, headers = get(decisions, decision)
            if status != 200 or "X-User-ID" not in headers:
                raise BenchError(f"sanity: the decision answered {status} without X-User-ID")
            lua = script(work / "hit.lua", decision)
            targets = {
                "bare aiohttp": (bare, bare_child.popen.pid),
                "cache hit": (decisions, kh.popen.pid),
                "no access log": (quiet_url, quiet.popen.pid),
            }
            rounds: list[dict[str, tuple[wrk.WrkResult, float]]] = []
            for index in range(ROUNDS):
                order = list(targets) if index % 2 == 0 else list(reversed(targets))
                rounds.append(
                    {name: measure(targets[name][0], lua, targets[name][1]) for name in order}
                )
            sup.ensure_all_running()
            log_lines = (work / "kratos-hooks.log").read_bytes().count(b'"msg":"access"')
    finally:
        if os.environ.get("BENCH_KEEP_TMP") != "1":
            shutil.rmtree(work, ignore_errors=True)

    ratios = sorted(r["cache hit"][0].rps / r["bare aiohttp"][0].rps for r in rounds)
    ratio = ratios[len(ratios) // 2]
    unlogged = sorted(r["no access log"][0].rps / r["bare aiohttp"][0].rps for r in rounds)
    print(
        f"pinned: targets on CPU {PROXY_CPUS}, load on CPU {LOAD_CPUS}; "
        f"{ROUNDS} rounds of {SECONDS:.0f} s"
    )
    print(f"{'target':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'µs CPU/req':>11}")
    for name in targets:
        runs = sorted((r[name] for r in rounds), key=lambda run: run[0].rps)
        result, cpu = runs[len(runs) // 2]
        figures = f"{result.rps:>9.0f} {result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {cpu:>11.1f}"
        print(f"{name:<14} {figures}")
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(
        f"cache hit / bare aiohttp: {ratio:.1%}, median of {ROUNDS} rounds "
        f"({', '.join(f'{r:.1%}' for r in ratios)}) (target ≥ {TARGET:.0%}: {verdict}); "
        f"access lines written: {log_lines}"
    )
    print(f"with ACCESS_LOG=false: {unlogged[len(unlogged) // 2]:.1%} of bare aiohttp (median)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(1)
