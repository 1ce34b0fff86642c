"""Client CPU per Redis script call: redis-py (its Python and hiredis parsers, RESP3) beside
the guard's lean pipe (``proxy/kernel/redis_pipe.py``), on the local Redis, in one run.

The login guard makes two such calls per login, so this is most of what the guard's Redis
store costs a login. Each client runs the same small script ``CALLS`` times with 16 calls in
flight, on uvloop, this process pinned to CPU 0 (Redis runs wherever the kernel puts it);
the figure is this process's user + system CPU time over the calls.

Run: ``.venv/bin/python bench/redis_calls_bench.py`` (``make bench`` runs it too).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import uvloop
from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

from proxy.kernel.redis_pipe import RedisPipe

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CALLS = int(os.environ.get("BENCH_REDIS_CALLS", "20000"))
IN_FLIGHT = 16
SCRIPT = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 60000)
return {n, 0, tonumber(ARGV[1])}
"""
PREFIX = f"kh-bench-{uuid.uuid4().hex[:8]}:"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(name: str, call: Callable[[], Awaitable[Any]]) -> tuple[str, float, float]:
    for _ in range(500):
        await call()
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one() -> None:
        async with gate:
            await call()

    cpu, wall = _cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(CALLS)))
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    return name, cpu / CALLS * 1e6, CALLS / wall


async def main() -> None:
    keys = [PREFIX + "a", PREFIX + "b"]
    rows = []
    for name, options in (
        ("redis-py, Python parser", {"parser_class": _AsyncRESP2Parser}),
        ("redis-py, hiredis parser", {"parser_class": _AsyncHiredisParser}),
        ("redis-py, RESP3", {"protocol": 3}),
    ):
        client = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(URL, **options))
        script = client.register_script(SCRIPT)
        rows.append(await measure(name, lambda s=script: s(keys=keys, args=[7])))
        await client.aclose()
    pipe = RedisPipe(URL)
    rows.append(
        await measure("kratos-hooks pipe (hiredis)", lambda: pipe.evalsha(SCRIPT, keys, [7]))
    )
    await pipe.close()
    cleanup = aioredis.from_url(URL)
    await cleanup.delete(*keys)
    await cleanup.aclose()
    print(f"{CALLS} calls, {IN_FLIGHT} in flight, this process on CPU 0")
    print(f"{'client':32} {'µs CPU/call':>12} {'calls/s':>10}")
    for name, cpu_us, rate in rows:
        print(f"{name:32} {cpu_us:12.1f} {rate:10.0f}")


if __name__ == "__main__":
    os.sched_setaffinity(0, {0})
    uvloop.install()
    asyncio.run(main())
