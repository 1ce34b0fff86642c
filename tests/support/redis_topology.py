"""Real Redis topologies for the scale-out tests: a 3-master Cluster and a Sentinel set
(a master, a replica and one sentinel), started from the Debian ``redis-server`` /
``redis-sentinel`` binaries in a temporary directory, on the ports the suite reserves for
them (19600-19699), and stopped whatever happens.

Nothing is persisted (``--save "" --appendonly no``); each process logs to a file in its
directory, which ``tail`` shows when a start-up fails.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

HOST = "127.0.0.1"
STARTUP = 20.0  # seconds a topology may take to become usable


def binaries_missing() -> str | None:
    """Why the topologies cannot run here, or None."""
    for name in ("redis-server", "redis-sentinel", "redis-cli"):
        if shutil.which(name) is None:
            return f"{name} is not installed (scripts/tools.sh installs redis-sentinel)"
    return None


def _wait(what: str, probe: Callable[[], bool], timeout: float = STARTUP) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout}s ({last})")


@dataclass
class Processes:
    """Server processes of one topology, each with its own log file."""

    root: Path
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, port: int, *args: str, binary: str = "redis-server") -> None:
        work = self.root / str(port)
        work.mkdir(parents=True, exist_ok=True)
        common = ["--port", str(port), "--bind", HOST, "--dir", str(work)]
        common += ["--logfile", str(work / "log"), "--daemonize", "no"]
        if binary == "redis-server":
            common += ["--save", "", "--appendonly", "no"]
        self.procs[port] = subprocess.Popen(
            [binary, *args, *common], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def log(self, port: int) -> str:
        path = self.root / str(port) / "log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self, port: int) -> None:
        proc = self.procs.pop(port, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for port in list(self.procs):
            self.stop(port)


def client(port: int) -> redis.Redis:
    return redis.Redis(HOST, port, socket_timeout=2, socket_connect_timeout=2)


def _pings(port: int) -> bool:
    with client(port) as c:
        return bool(c.ping())


# --- Cluster ---------------------------------------------------------------------------------


@dataclass
class Cluster:
    ports: tuple[int, ...]
    processes: Processes

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{HOST}:{p}" for p in self.ports)

    def owner(self, slot: int) -> int:
        """The port of the master that serves ``slot``."""
        with client(self.ports[0]) as c:
            for start, end, master, *_ in c.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(slot)

    def node_id(self, port: int) -> str:
        with client(port) as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def move_slot(self, slot: int, to_port: int) -> None:
        """Migrate ``slot`` with its keys to ``to_port``'s master, as ``redis-cli --cluster
        reshard`` does: IMPORTING / MIGRATING, MIGRATE every key, SETSLOT NODE everywhere."""
        from_port = self.owner(slot)
        if from_port == to_port:
            return
        source, target = self.node_id(from_port), self.node_id(to_port)
        with client(to_port) as dst, client(from_port) as src:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", HOST, to_port, "", 0, 5000, "KEYS", *keys)
            for port in self.ports:
                with client(port) as c:
                    c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target)

    def flush(self) -> None:
        for port in self.ports:
            with client(port) as c:
                c.flushall()


@contextlib.contextmanager
def running_cluster(root: Path, ports: tuple[int, int, int]) -> Iterator[Cluster]:
    """Three masters, no replicas; the cluster bus on ``port + 3`` (inside the range)."""
    processes = Processes(root)
    try:
        for port in ports:
            processes.start(
                port,
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-port", str(port + len(ports)),
                "--cluster-node-timeout", "2000",
            )  # fmt: skip
        for port in ports:
            _wait(f"cluster node {port}", lambda p=port: _pings(p))
        seeds = [f"{HOST}:{p}" for p in ports]
        create = ["redis-cli", "--cluster", "create", *seeds, "--cluster-replicas", "0"]
        subprocess.run(
            [*create, "--cluster-yes"], check=True, stdout=subprocess.DEVNULL, timeout=STARTUP
        )

        def settled() -> bool:
            for port in ports:
                with client(port) as c:
                    info = c.execute_command("CLUSTER", "INFO").decode()
                    if "cluster_state:ok" not in info or "cluster_known_nodes:3" not in info:
                        return False
            return True

        _wait("cluster", settled)
        yield Cluster(ports, processes)
    finally:
        processes.stop_all()


# --- Sentinel --------------------------------------------------------------------------------

SERVICE = "khmaster"


@dataclass
class SentinelSet:
    master_port: int
    replica_port: int
    sentinel_port: int
    processes: Processes

    @property
    def url(self) -> str:
        return f"redis+sentinel://{HOST}:{self.sentinel_port}/{SERVICE}"

    def current_master(self) -> int:
        with client(self.sentinel_port) as s:
            _host, port = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return int(port)

    def _role(self, port: int) -> str:
        with client(port) as c:
            return str(c.execute_command("ROLE")[0].decode())

    def ready(self) -> bool:
        """The sentinel knows a healthy replica and the replica is in sync: a failover can
        happen (``SENTINEL FAILOVER`` answers NOGOODSLAVE otherwise)."""
        master = self.current_master()
        other = self.replica_port if master == self.master_port else self.master_port
        with client(other) as c:
            info = c.info("replication")
        if info.get("role") != "slave" or info.get("master_link_status") != "up":
            return False
        with client(self.sentinel_port) as s:
            replicas = s.execute_command("SENTINEL", "REPLICAS", SERVICE)
        for raw in replicas:
            fields = dict(zip(raw[::2], raw[1::2], strict=False))
            flags = fields.get(b"flags", b"").decode()
            if int(fields.get(b"port", 0)) == other and flags == "slave":
                return True
        return False

    def failover(self) -> int:
        """Promote the replica with ``SENTINEL FAILOVER``; the new master's port once the
        sentinel names it and it answers as a master."""
        old = self.current_master()
        with client(self.sentinel_port) as s:
            s.execute_command("SENTINEL", "FAILOVER", SERVICE)

        def promoted() -> bool:
            master = self.current_master()
            return master != old and self._role(master) == "master"

        _wait("failover", promoted)
        return self.current_master()

    def settle(self) -> None:
        """Wait until the demoted master replicates from the new one (the next failover can
        run)."""
        _wait("sentinel set", self.ready)


@contextlib.contextmanager
def running_sentinel(root: Path, master: int, replica: int, sentinel: int) -> Iterator[SentinelSet]:
    processes = Processes(root)
    try:
        processes.start(master, "--repl-diskless-sync-delay", "0")
        processes.start(
            replica, "--replicaof", HOST, str(master), "--repl-diskless-sync-delay", "0"
        )
        for port in (master, replica):
            _wait(f"redis {port}", lambda p=port: _pings(p))
        conf = root / f"sentinel-{sentinel}.conf"
        conf.write_text(
            f"sentinel monitor {SERVICE} {HOST} {master} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 2000\n"
            f"sentinel failover-timeout {SERVICE} 10000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        processes.start(sentinel, str(conf), binary="redis-sentinel")
        topology = SentinelSet(master, replica, sentinel, processes)
        _wait("sentinel", topology.ready)
        yield topology
    finally:
        processes.stop_all()
