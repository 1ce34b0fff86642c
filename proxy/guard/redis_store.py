"""Bucket state in Redis: one Lua script per operation, so each is one atomic round trip.

Layout (under ``REDIS_KEY_PREFIX``): a bucket is a hash ``{f: failures, t: last failure ms}``
that expires ``window`` after its last failure, plus a sorted set ``<bucket>:r`` of the
attempts in flight scored by the end of their lease — a crashed replica's reservations
simply age out. Times are milliseconds from the caller's clock (``now`` is an argument, so
tests can drive a simulated hour and replicas never read Redis' clock).

On a Redis Cluster a script may only touch keys of one hash slot: every key the guard makes
starts with ``naming.BUCKETS``, the hash tag ``{bo}``, so all of them — an attempt's three
buckets, their in-flight sets, its rate window — share one slot (``naming`` says why one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from proxy.guard.policy import ALLOWED, Bucket, Outcome, Verdict
from proxy.guard.store import BucketReport, FlowHold, RateWindow
from proxy.kernel.redis import (
    CALL_TIMEOUT,
    FAILURES,
    RedisClient,
    redis_call,
    scan_keys,
    unavailable,
)
from proxy.kernel.redis_pipe import RedisPipe

# Mirrors policy.judge / policy.apply; keep the two in step (tests compare them).
_WAIT = """
local function wait(f, free, base, cap)
  if f < free then return 0 end
  local e = math.min(f - free, 60)
  return math.min(base * 2 ^ e, cap)
end
"""

# KEYS: per bucket (hash, in-flight zset); then optionally the plain-window counter.
# ARGV: now, token, lease, mode ('reserve'|'count'), n buckets,
#       per bucket (free, base, cap, window) [, window limit, window end].
RESERVE = (
    _WAIT
    + """
local now = tonumber(ARGV[1])
local token, lease, mode, n = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
if #KEYS > 2 * n then
  local key = KEYS[2 * n + 1]
  local limit, ends = tonumber(ARGV[6 + 4 * n]), tonumber(ARGV[7 + 4 * n])
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIREAT', key, ARGV[7 + 4 * n]) end
  if count > limit then return {0, 0, math.max(ends - now, 1000)} end
end
local worst, worst_i = 0, 0
for i = 1, n do
  local h, z, o = KEYS[2 * i - 1], KEYS[2 * i], 5 + 4 * (i - 1)
  local free, base, cap = tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])
  redis.call('ZREMRANGEBYSCORE', z, '-inf', ARGV[1])
  local r = redis.call('ZCARD', z)
  local v = redis.call('HMGET', h, 'f', 't')
  local f, t = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if f + r >= free then
    local remaining = t + wait(f, free, base, cap) - now
    if r > 0 or remaining > 0 then
      local held = remaining
      if r > 0 then held = math.max(held, wait(f + r, free, base, cap)) end
      held = math.max(held, 1000)
      if held > worst then worst, worst_i = held, i end
    end
  end
end
if worst_i > 0 then return {0, worst_i, math.ceil(worst)} end
for i = 1, n do
  local h, z, o = KEYS[2 * i - 1], KEYS[2 * i], 5 + 4 * (i - 1)
  if mode == 'count' then
    redis.call('HINCRBY', h, 'f', 1)
    redis.call('HSET', h, 't', ARGV[1])
    redis.call('PEXPIRE', h, ARGV[o + 4])
  else
    redis.call('ZADD', z, string.format('%d', now + lease), token)
    redis.call('PEXPIRE', z, ARGV[3])
  end
end
return {1, 0, 0}
"""
)

# KEYS: per bucket (hash, in-flight zset). ARGV: now, token, outcome, n, per bucket
# (window, reset-on-success 0|1).
SETTLE = """
local outcome, n = ARGV[3], tonumber(ARGV[4])
for i = 1, n do
  local h, z, o = KEYS[2 * i - 1], KEYS[2 * i], 4 + 2 * (i - 1)
  redis.call('ZREM', z, ARGV[2])
  if outcome == 'failure' then
    redis.call('HINCRBY', h, 'f', 1)
    redis.call('HSET', h, 't', ARGV[1])
    redis.call('PEXPIRE', h, ARGV[o + 1])
  elseif outcome == 'success' and ARGV[o + 2] == '1' then
    redis.call('DEL', h)
  end
end
return n
"""

# KEYS: the window counter. ARGV: limit, window end, now.
HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  return math.max(tonumber(ARGV[2]) - tonumber(ARGV[3]), 1000)
end
return 0
"""

_T = TypeVar("_T")


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisStore:
    """The bucket store in Redis; each call bounded by ``timeout`` (``kernel.redis``)."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        timeout: float = CALL_TIMEOUT,
        pipe: RedisPipe | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        # The three scripts run on every login: through the lean pipe when there is one
        # (``kernel.redis_pipe``: a fifth of redis-py's CPU per call; one server only), else
        # through redis-py. redis-py types register_script for Redis alone; RedisCluster's is
        # the same one (each call is routed by its first key's slot, all of one slot here).
        self._pipe = pipe
        scripts: Any = client
        self._scripts = {
            source: scripts.register_script(source) for source in (RESERVE, SETTLE, HIT)
        }

    def _keys(self, buckets: Sequence[Bucket]) -> list[str]:
        keys: list[str] = []
        for bucket in buckets:
            name = self._prefix + bucket.key
            keys += [name, name + ":r"]
        return keys

    async def _call(self, call: Awaitable[_T]) -> _T:
        return await redis_call(call, self._timeout)

    async def _run(self, source: str, keys: list[str], args: list[Any]) -> Any:
        if self._pipe is not None:
            try:  # bounded by the pipe itself: no ``asyncio.timeout`` per login
                return await self._pipe.evalsha(source, keys, args, timeout=self._timeout)
            except FAILURES as exc:
                raise unavailable(exc) from exc
        return await self._call(self._scripts[source](keys=keys, args=args))

    async def reserve(
        self,
        buckets: Sequence[Bucket],
        token: str,
        now: float,
        lease: float,
        *,
        count: bool = False,
        rate: RateWindow | None = None,
    ) -> Verdict:
        keys = self._keys(buckets)
        args: list[Any] = [_ms(now), token, _ms(lease), "count" if count else "reserve"]
        args.append(len(buckets))
        for bucket in buckets:
            policy = bucket.policy
            args += [policy.free, _ms(policy.base), _ms(policy.cap), _ms(policy.window)]
        if rate is not None:
            keys.append(self._prefix + rate.key)
            args += [rate.limit, _ms(rate.ends_at)]
        allowed, index, retry = await self._run(RESERVE, keys, args)
        if allowed:
            return ALLOWED
        kind = "rate" if index == 0 else buckets[int(index) - 1].kind
        return Verdict(False, kind, int(retry) / 1000)

    async def settle(
        self, buckets: Sequence[Bucket], token: str, outcome: Outcome, now: float
    ) -> None:
        args: list[Any] = [_ms(now), token, outcome.value, len(buckets)]
        for bucket in buckets:
            args += [_ms(bucket.policy.window), int(bucket.reset_on_success)]
        await self._run(SETTLE, self._keys(buckets), args)

    async def hit(self, rate: RateWindow, now: float) -> Verdict:
        args = [rate.limit, _ms(rate.ends_at), _ms(now)]
        retry = await self._run(HIT, [self._prefix + rate.key], args)
        return ALLOWED if not retry else Verdict(False, "rate", int(retry) / 1000)

    async def remember_flow(self, key: str, hold: FlowHold, now: float) -> None:
        value = f"{_ms(hold.until)}:{'rate' if hold.rate else 'backoff'}"
        px = max(1, _ms(hold.until - now))
        await self._call(self._client.set(self._prefix + key, value, px=px))

    async def flow_lockout(self, key: str, now: float) -> FlowHold | None:
        value = await self._call(self._client.get(self._prefix + key))
        if value is None:
            return None
        until, _, reason = (value.decode() if isinstance(value, bytes) else str(value)).partition(
            ":"
        )
        if int(until) <= _ms(now):
            return None
        return FlowHold(int(until) / 1000, rate=reason == "rate")

    async def inspect(self, key: str, now: float) -> BucketReport | None:
        name = self._prefix + key
        # One round trip, not a transaction: this report need not be atomic, and redis-py's
        # asyncio Cluster client runs a MULTI by starting a thread per command.
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(name, ["f", "t"])
        pipe.pttl(name)
        pipe.zcount(name + ":r", f"({_ms(now)}", "+inf")
        (failures, last), ttl, in_flight = await self._call(pipe.execute())
        if failures is None and not in_flight:
            return None
        return BucketReport(
            int(failures or 0), int(last or 0) / 1000, int(in_flight), max(ttl, 0) / 1000
        )

    async def clear(self, keys: Sequence[str], prefixes: Sequence[str]) -> int:
        names = [self._prefix + k for k in keys]
        names += [name + ":r" for name in list(names)]
        for prefix in prefixes:  # on a Cluster, every master (``scan_keys``)
            found = await scan_keys(self._client, f"{self._prefix}{prefix}*", timeout=self._timeout)
            names += [name.decode() for name in found]
        return int(await self._call(self._client.delete(*names))) if names else 0
