"""The kernel's Redis operations a Cluster spells differently, against a real Cluster: a
subscriber on one node hears a PUBLISH sent to any node, and a key scan walks every master;
and a subscription never goes quietly deaf."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.kernel.redis import close_client, make_client, publish, scan_keys, subscribe
from tests.support.redis_topology import HOST, Cluster


async def test_a_subscriber_hears_a_publish_sent_to_any_node(
    redis_cluster: Cluster, redis_prefix: str
) -> None:
    channel = f"{redis_prefix}purge"
    cluster = make_client(redis_cluster.url)
    try:
        async with subscribe(cluster, channel) as pubsub:
            for port in redis_cluster.ports:  # straight to each node, bypassing any routing
                async with aioredis.Redis(host=HOST, port=port) as node:
                    await node.publish(channel, f"via {port}")
            await publish(cluster, channel, "via the cluster client")
            heard: list[bytes] = []
            deadline = asyncio.get_running_loop().time() + 3
            while len(heard) < 4 and asyncio.get_running_loop().time() < deadline:
                data = await pubsub.message(timeout=0.2)
                if data is not None:
                    heard.append(data)
    finally:
        await close_client(cluster)
    expected = {f"via {port}".encode() for port in redis_cluster.ports}
    assert set(heard) == expected | {b"via the cluster client"}


async def test_a_key_scan_walks_every_master(redis_cluster: Cluster, redis_prefix: str) -> None:
    names = [f"{redis_prefix}k{i}" for i in range(60)]
    owners = {redis_cluster.owner(key_slot(name.encode())) for name in names}
    assert len(owners) == 3  # spread over the three masters
    cluster = make_client(redis_cluster.url)
    try:
        for name in names:
            await cluster.set(name, b"1", px=60_000)
        found = await scan_keys(cluster, f"{redis_prefix}k*", count=10)
    finally:
        await close_client(cluster)
    assert sorted(key.decode() for key in found) == sorted(names)


async def test_a_subscription_whose_connection_was_remade_underneath_says_so(
    redis_url: str, redis_prefix: str
) -> None:
    """redis-py re-makes a pub/sub connection dropped between two reads, silently; what was
    published meanwhile is lost, so the subscription must end with an error instead."""
    channel = f"{redis_prefix}purge"
    client = make_client(redis_url)
    try:
        async with subscribe(client, channel) as subscription:
            await publish(client, channel, "before")
            first = None
            for _ in range(10):  # the subscription's confirmation reads as None
                if first := await subscription.message(timeout=0.2):
                    break
            assert first == b"before"
            connection = subscription._pubsub.connection
            assert connection is not None
            await connection.disconnect()  # what a Sentinel failover does to it
            await publish(client, channel, "lost")
            with pytest.raises(RedisConnectionError):
                while True:
                    await subscription.message(timeout=0.2)
    finally:
        await close_client(client)
