"""Both stores (the Redis Lua scripts and the in-process one) against the same schedules."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.crc import key_slot

from proxy.guard.identity import Keyer
from proxy.guard.naming import BUCKETS as B
from proxy.guard.naming import BucketNames
from proxy.guard.policy import BucketPolicy, Outcome, Policies
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import FlowHold, MemoryStore, RateWindow, Store
from proxy.kernel.redis import close_client, scan_keys
from tests.guard.conftest import bucket, redis_client

T0 = 1_800_000_000.0
LEASE = 60.0


async def fail(store: Store, buckets: list, now: float, token: str = "t") -> bool:
    verdict = await store.reserve(buckets, token, now, LEASE)
    if verdict.allowed:
        await store.settle(buckets, token, Outcome.FAILURE, now)
    return verdict.allowed


async def test_progressive_waits(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:a")]
    for i in range(3):
        assert await fail(store, buckets, T0 + i)
    verdict = await store.reserve(buckets, "x", T0 + 3, LEASE)
    assert not verdict.allowed and verdict.bucket == "identifier"
    assert verdict.retry_after == pytest.approx(1.0)  # 2 s after the last failure at T0+2
    assert await fail(store, buckets, T0 + 4)  # wait over; fails again → 4 s
    verdict = await store.reserve(buckets, "x", T0 + 5, LEASE)
    assert verdict.retry_after == pytest.approx(3.0)
    assert not (await store.reserve(buckets, "x", T0 + 7.9, LEASE)).allowed
    assert (await store.reserve(buckets, "x", T0 + 8, LEASE)).allowed


async def test_success_resets_identifier_and_pair_not_ip(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:a"), bucket("ip", B + "ip:a"), bucket("pair", B + "p")]
    for i in range(3):
        assert await fail(store, buckets, T0 + i)
    assert not (await store.reserve(buckets, "x", T0 + 2.5, LEASE)).allowed
    verdict = await store.reserve(buckets, "ok", T0 + 10, LEASE)
    assert verdict.allowed
    await store.settle(buckets, "ok", Outcome.SUCCESS, T0 + 10)
    assert await store.inspect(B + "id:a", T0 + 10) is None
    assert await store.inspect(B + "p", T0 + 10) is None
    ip = await store.inspect(B + "ip:a", T0 + 10)
    assert ip is not None and ip.failures == 3


async def test_not_counted_outcomes_only_release_the_place(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:a", free=1)]
    for i in range(5):
        verdict = await store.reserve(buckets, f"t{i}", T0 + i, LEASE)
        assert verdict.allowed
        await store.settle(buckets, f"t{i}", Outcome.NOT_COUNTED, T0 + i)
    assert await store.inspect(B + "id:a", T0 + 5) is None


async def test_concurrent_reservations_never_exceed_the_allowance(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:c", free=4), bucket("ip", B + "ip:c", free=100)]
    verdicts = await asyncio.gather(
        *(store.reserve(buckets, f"t{i}", T0, LEASE) for i in range(50))
    )
    assert sum(v.allowed for v in verdicts) == 4
    blocked = [v for v in verdicts if not v.allowed]
    assert {v.bucket for v in blocked} == {"identifier"}
    assert all(v.retry_after >= 1 for v in blocked)


async def test_a_crashed_attempt_frees_its_place_after_the_lease(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:l", free=1)]
    assert (await store.reserve(buckets, "lost", T0, LEASE)).allowed
    assert not (await store.reserve(buckets, "b", T0 + 1, LEASE)).allowed
    assert (await store.reserve(buckets, "c", T0 + LEASE + 0.01, LEASE)).allowed


async def test_count_mode_records_a_failure_at_once(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:n", free=2)]
    for i in range(2):
        assert (await store.reserve(buckets, "-", T0 + i, LEASE, count=True)).allowed
    report = await store.inspect(B + "id:n", T0 + 1)
    assert report is not None and report.failures == 2 and report.in_flight == 0
    assert not (await store.reserve(buckets, "-", T0 + 1.5, LEASE, count=True)).allowed


async def test_plain_window(store: Store) -> None:
    window = RateWindow(B + "rl:x:1", limit=3, ends_at=T0 + 60)
    results = [await store.hit(window, T0 + i) for i in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert results[3].bucket == "rate" and results[3].retry_after == pytest.approx(57.0)


async def test_window_inside_the_reserve_check(store: Store) -> None:
    buckets = [bucket("identifier", B + "id:w", free=100)]
    window = RateWindow(B + "rl:login:1", limit=2, ends_at=T0 + 60)
    allowed = [(await store.reserve(buckets, f"{i}", T0, LEASE, rate=window)) for i in range(3)]
    assert [v.allowed for v in allowed] == [True, True, False]
    assert allowed[2].bucket == "rate"


async def test_flow_lockout_is_remembered_for_the_wait_with_its_reason(store: Store) -> None:
    await store.remember_flow(B + "flow:f", FlowHold(T0 + 30), T0)
    await store.remember_flow(B + "flow:r", FlowHold(T0 + 30, rate=True), T0)
    held = await store.flow_lockout(B + "flow:f", T0 + 1)
    assert held is not None and held.until == pytest.approx(T0 + 30) and not held.rate
    limited = await store.flow_lockout(B + "flow:r", T0 + 1)
    assert limited is not None and limited.rate
    assert await store.flow_lockout(B + "flow:f", T0 + 31) is None
    assert await store.flow_lockout(B + "flow:other", T0) is None


async def test_clear_removes_an_identifier_and_all_its_pairs(store: Store) -> None:
    for key in (B + "id:z", B + "pair:z:1", B + "pair:z:2", B + "pair:y:1"):
        await fail(store, [bucket("identifier", key)], T0)
    await store.clear([B + "id:z"], [B + "pair:z:"])
    assert await store.inspect(B + "id:z", T0) is None
    assert await store.inspect(B + "pair:z:2", T0) is None
    assert await store.inspect(B + "pair:y:1", T0) is not None


async def test_every_redis_key_expires(redis_topology_url: str, redis_prefix: str) -> None:
    client = redis_client(redis_topology_url)
    try:
        store = RedisStore(client, redis_prefix)
        buckets = [bucket("identifier", B + "id:e"), bucket("pair", B + "pair:e:1")]
        now = time.time()
        window = RateWindow(B + "rl:login:e", 10, now + 60)
        held = RateWindow(B + "rl:l:e", 10, now + 60)
        await store.reserve(buckets, "held", now, LEASE, rate=held)
        await store.reserve(buckets, "done", now, LEASE, rate=window)
        await store.settle(buckets, "done", Outcome.FAILURE, now)
        await store.remember_flow(B + "flow:e", FlowHold(now + 30), now)
        keys = await scan_keys(client, f"{redis_prefix}*")
        assert len(keys) >= 5
        for key in keys:
            ttl = await client.pttl(key)
            assert ttl > 0, key
    finally:
        await close_client(client)


@pytest.mark.parametrize("prefix", ["kh:", "", "{kh}:", "a{b:", "x}y{", "kh:{"])
def test_every_key_of_one_attempt_shares_one_cluster_slot(prefix: str) -> None:
    """A Cluster runs a script only when all its keys hash to one slot (else CROSSSLOT)."""
    policies = Policies(*(BucketPolicy(5, 1.0, 60.0, 3600.0),) * 3)
    names = BucketNames(Keyer("secret"), policies)
    slots = set()
    for identifier in ("alice@example.com", "bob@example.com", None):
        for ip in ("203.0.113.7", "2001:db8::1"):
            address = names.address(ip)
            subject = names.subject(identifier, address)
            keys = [k for b in names.buckets(subject) for k in (b.key, b.key + ":r")]
            window = names.rate_window("login", address, 10, now=T0, window=60)
            assert window is not None
            keys += [window.key, names.flow_key("f")]
            slots |= {key_slot((prefix + key).encode()) for key in keys}
    assert len(slots) == 1


def test_memory_store_is_bounded() -> None:
    async def run() -> int:
        store = MemoryStore(max_keys=100)
        for i in range(1000):
            await fail(store, [bucket("ip", B + f"ip:{i}")], T0)
        return len(store)

    assert asyncio.run(run()) == 100
