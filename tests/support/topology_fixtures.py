"""Fixtures for the Redis topologies (``tests.support.redis_topology``), imported by the
root ``conftest``: a Cluster and a Sentinel set for the whole session, started only when a
test asks for one, and a Sentinel set of its own for a test that fails it over.

``redis_topology_url`` is parametrised over the three forms ``REDIS_URL`` takes — the shared
local server, the Sentinel set, the Cluster — for contract tests that must hold on each.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.redis_topology import (
    Cluster,
    SentinelSet,
    binaries_missing,
    running_cluster,
    running_sentinel,
)

# The suite's fixed ports (19600-19699); everything else binds 127.0.0.1:0.
CLUSTER_PORTS = (19600, 19601, 19602)  # cluster bus on 19603-19605
SENTINEL_PORTS = (19610, 19611, 19620)  # master, replica, sentinel
FAILOVER_PORTS = (19630, 19631, 19640)

TOPOLOGIES = ("server", "sentinel", "cluster")


def _require_free(*ports: int) -> None:
    if problem := binaries_missing():
        pytest.fail(problem)
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(
                    f"port {port} is taken (a redis-server left by an interrupted run?): "
                    "the Redis topology tests need 19600-19699"
                )


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _require_free(*CLUSTER_PORTS, *(port + 3 for port in CLUSTER_PORTS))
    with running_cluster(tmp_path_factory.mktemp("cluster"), CLUSTER_PORTS) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    _require_free(*SENTINEL_PORTS)
    with running_sentinel(tmp_path_factory.mktemp("sentinel"), *SENTINEL_PORTS) as topology:
        yield topology


@pytest.fixture
def failover_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """A Sentinel set of this test's own: it may fail it over and leave it so."""
    _require_free(*FAILOVER_PORTS)
    with running_sentinel(tmp_path_factory.mktemp("failover"), *FAILOVER_PORTS) as topology:
        yield topology


def topology_url(request: pytest.FixtureRequest, kind: str, server_url: str) -> str:
    if kind == "cluster":
        cluster: Cluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    if kind == "sentinel":
        sentinel: SentinelSet = request.getfixturevalue("redis_sentinel")
        return sentinel.url
    return server_url


@pytest.fixture(params=TOPOLOGIES)
def redis_topology_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """``REDIS_URL`` of each topology in turn (keys isolated by ``redis_prefix`` as usual)."""
    return topology_url(request, request.param, redis_url)
