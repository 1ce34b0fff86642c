"""Revocation propagation: how long after a revocation on one replica another refuses the
token, for each way a revocation travels — Redis pub/sub, Postgres LISTEN/NOTIFY (no Redis),
and the embedded SQLite file (polled) — measured on two real instances in this process.

For each mode, ``BENCH_REVOCATIONS`` times (default 30): a service token is issued on the
first replica, checked on both (so the second has it cached), revoked on the first, and the
second replica's ``/decisions`` is asked every 2 ms until it answers 401. Needs the local
Redis (``KH_BENCH_REDIS_URL``) and PostgreSQL (``KH_BENCH_POSTGRES_URL``, a database is made
and dropped). Run: ``.venv/bin/python bench/revocation_bench.py`` (``make bench`` runs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from config import load_settings  # noqa: E402
from proxy import server  # noqa: E402

RESULTS = REPO / "bench" / "results" / "revocation.json"
REDIS = os.environ.get("KH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get("KH_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
COUNT = int(os.environ.get("BENCH_REVOCATIONS", "30"))
RULES = """
[[rules]]
id = "api"
paths = ["/api/**"]
authenticators = ["token"]
authorizer = "allow"
"""
HEADERS = {
    "X-Forwarded-Method": "GET",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "api.example.com",
    "X-Forwarded-Uri": "/api/x",
}


async def status(http: aiohttp.ClientSession, url: str, token: str) -> int:
    async with http.get(url, headers=HEADERS | {"X-API-Key": token}) as response:
        await response.read()
        return response.status


async def mode(name: str, env: dict[str, str], http: aiohttp.ClientSession) -> list[float]:
    base = {
        "PUBLIC_LISTEN": "127.0.0.1:0",
        "INTERNAL_LISTEN": "127.0.0.1:0",
        "TRUSTED_PROXIES": "127.0.0.1/32",
        "LOG_LEVEL": "ERROR",
        "ACCESS_LOG": "false",
        "TOKENS_CACHE_TTL": "600",
    }
    first = await server.start(load_settings(env=base | env))
    second = await server.start(load_settings(env=base | env))
    times: list[float] = []
    try:
        issuer = first.shared.credentials
        assert issuer is not None
        urls = [f"http://127.0.0.1:{r.internal_port}/decisions" for r in (first, second)]
        await asyncio.sleep(1.0)  # the listeners have subscribed / connected
        for _ in range(COUNT):
            made = await issuer.issue(
                "svc", owner="bench", name="bench", scopes=("read:x",), expires_at=None,
                created_by="bench", origin="cli",
            )  # fmt: skip
            for url in urls:
                if await status(http, url, made.secret) != 200:
                    raise SystemExit(f"{name}: a fresh token was refused")
            started = time.perf_counter()
            await issuer.revoke(made.record.id, by="bench")
            while await status(http, urls[1], made.secret) != 401:
                if time.perf_counter() - started > 5:
                    raise SystemExit(f"{name}: a revocation never arrived")
                await asyncio.sleep(0.002)
            times.append(time.perf_counter() - started)
    finally:
        await second.stop()
        await first.stop()
    return times


async def main() -> int:
    database = f"kh_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = POSTGRES.rsplit("/", 1)[0] + "/" + database
    prefix = f"kh-bench-{uuid.uuid4().hex[:6]}:"
    results: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rules = Path(tmp) / "rules.toml"
            rules.write_text(RULES)
            modes = {
                "redis pub/sub": {"REDIS_URL": REDIS, "REDIS_KEY_PREFIX": prefix,
                                  "DATABASE_URL": dsn, "DB_MIGRATE": "true"},
                "postgres notify": {"DATABASE_URL": dsn, "DB_MIGRATE": "true"},
                "sqlite poll": {"TOKENS_SQLITE_FILE": f"{tmp}/tokens.sqlite3",
                                "SPOOL_DIR": f"{tmp}/spool"},
            }  # fmt: skip
            async with aiohttp.ClientSession() as http:
                for name, env in modes.items():
                    extra = {"SPOOL_DIR": f"{tmp}/spool", "DECISIONS_RULES_FILE": str(rules)}
                    results[name] = await mode(name, env | extra, http)
    finally:
        admin = await asyncpg.connect(POSTGRES)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    print(
        f"{'mode':<16} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}   ({COUNT} revocations each)"
    )
    summary = {}
    for name, times in results.items():
        ms = sorted(t * 1000 for t in times)
        p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
        summary[name] = {"median_ms": statistics.median(ms), "p95_ms": p95, "max_ms": ms[-1]}
        print(f"{name:<16} {statistics.median(ms):>10.1f} {p95:>8.1f} {ms[-1]:>8.1f}")
    worst = max(s["max_ms"] for s in summary.values())
    print(f"slowest revocation seen by the second replica: {worst:.0f} ms (target < 1,000 ms)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"modes": summary, "count": COUNT}, indent=2))
    return 0 if worst < 1000 else 1


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(main()))
