"""The guard's lean Redis connection, against the real local Redis (and a relay to cut it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from proxy.kernel.redis import RedisUnavailable, redis_call
from proxy.kernel.redis_pipe import SWEEP_EVERY, RedisPipe
from tests.conftest import REDIS_BASE
from tests.support.relay import FaultyRelay

SCRIPT = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}"
RelayTo = Callable[[str, int], Awaitable[FaultyRelay]]


@pytest.fixture
async def pipe() -> RedisPipe:
    return RedisPipe(REDIS_BASE)


async def test_a_script_runs_by_sha_and_is_loaded_when_the_server_lacks_it(
    pipe: RedisPipe, redis_prefix: str
) -> None:
    key = redis_prefix + "count"
    try:
        await pipe.call("SCRIPT", "FLUSH")  # the server forgot every script: NOSCRIPT first
        first = await pipe.evalsha(SCRIPT, [key], ["a"])
        second = await pipe.evalsha(SCRIPT, [key], ["b"])
        assert first == [key.encode(), b"a", 1] and second == [key.encode(), b"b", 2]
        sha = (await pipe.call("SCRIPT", "LOAD", SCRIPT)).decode()
        assert await pipe.call("EVALSHA", sha, 1, key, "c") == [key.encode(), b"c", 3]
    finally:
        await pipe.close()


async def test_replies_reach_their_own_callers_when_many_are_in_flight(
    pipe: RedisPipe, redis_prefix: str
) -> None:
    try:
        await asyncio.gather(*(pipe.call("SET", f"{redis_prefix}{i}", i) for i in range(200)))
        values = await asyncio.gather(*(pipe.call("GET", f"{redis_prefix}{i}") for i in range(200)))
        assert values == [str(i).encode() for i in range(200)]
    finally:
        await pipe.close()


async def test_a_script_error_is_a_redis_failure(pipe: RedisPipe) -> None:
    try:
        with pytest.raises(RedisUnavailable):
            await redis_call(pipe.evalsha("return redis.call('NOSUCHCOMMAND')", [], []))
        assert await pipe.call("PING") == b"PONG"  # the connection is still good
    finally:
        await pipe.close()


async def test_a_cut_fails_the_calls_in_flight_and_the_next_call_reconnects(
    relay_to: RelayTo, redis_prefix: str
) -> None:
    host, port = REDIS_BASE.removeprefix("redis://").partition("/")[0].split(":")
    relay = await relay_to(host, int(port))
    pipe = RedisPipe(relay.url("redis", "/0"))
    try:
        assert await pipe.call("PING") == b"PONG"
        relay.pause(down=True, up=False)  # the request goes out, its answer is held
        call = asyncio.ensure_future(redis_call(pipe.call("GET", redis_prefix + "x")))
        await asyncio.sleep(0.05)
        relay.cut()
        with pytest.raises(RedisUnavailable):
            await call
        relay.restore()
        assert await redis_call(pipe.call("PING")) == b"PONG"
    finally:
        await pipe.close()


@pytest.mark.parametrize("bound", ["redis_call", "the pipe's own"])
async def test_a_caller_that_gave_up_leaves_the_order_of_replies_intact(
    relay_to: RelayTo, redis_prefix: str, bound: str
) -> None:
    """A silent Redis fails the call within its bound — ``redis_call``'s, or the pipe's own
    (``timeout=``: one sweep, no ``asyncio.timeout``) — and the late reply is read and
    dropped, not handed to the next caller."""
    host, port = REDIS_BASE.removeprefix("redis://").partition("/")[0].split(":")
    relay = await relay_to(host, int(port))
    pipe = RedisPipe(relay.url("redis", "/0"))
    try:
        await pipe.call("SET", redis_prefix + "a", "A")
        await pipe.call("SET", redis_prefix + "b", "B")
        relay.pause(down=True, up=False)
        started = time.monotonic()
        with pytest.raises(RedisUnavailable if bound == "redis_call" else TimeoutError):
            if bound == "redis_call":
                await redis_call(pipe.call("GET", redis_prefix + "a"), timeout=0.1)
            else:
                await pipe.call("GET", redis_prefix + "a", timeout=0.1)
        waited = time.monotonic() - started
        assert 0.1 <= waited < 0.1 + SWEEP_EVERY + 0.1, waited
        late = asyncio.ensure_future(pipe.call("GET", redis_prefix + "b"))
        relay.resume()
        assert await late == b"B"  # not "A": the abandoned reply was read and dropped
    finally:
        await pipe.close()


def test_the_pipe_works_on_uvloop_whose_transports_differ() -> None:
    """The service runs on uvloop; the rest of this suite on asyncio's own loop."""

    async def scenario() -> list[object]:
        pipe = RedisPipe(REDIS_BASE)
        key = f"kh-test-pipe-{uuid.uuid4().hex}"
        try:
            return list(await asyncio.gather(*(pipe.evalsha(SCRIPT, [key], [i]) for i in (1, 2))))
        finally:
            await pipe.call("DEL", key)
            await pipe.close()

    first, second = uvloop.run(scenario())
    assert isinstance(first, list) and isinstance(second, list)
    assert (first[1], second[1]) == (b"1", b"2")
