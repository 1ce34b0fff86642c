"""CPU pinning and CPU time: the proxy under test on one core, everything else on the other.

On a 2-core machine a proxy and its load generator compete for the same cores unless they
are pinned; then the proxy's throughput depends on how the scheduler happened to place
wrk. Pinned, each contender gets one whole core and the figures compare per core. CPU time
is read from ``/proc`` (user + system, the process and all its threads; for ``--workers N``
its child processes too), so "µs of CPU per request" needs no profiler.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

TASKSET = shutil.which("taskset") or "/usr/bin/taskset"
TICKS = os.sysconf("SC_CLK_TCK")

# CPU 0: the proxy under test (kratos-hooks or nginx). CPU 1: upstream, wrk, the bench itself.
PROXY_CPUS = "0"
LOAD_CPUS = "1"


def cpus_available() -> int:
    return len(os.sched_getaffinity(0))


def pinned(cpus: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run on ``cpus`` (a taskset list such as ``0`` or ``0,1``)."""
    return [TASKSET, "-c", cpus, *argv]


def pin_self(cpus: str) -> None:
    """This process (and what it starts unpinned: wrk, the open-loop client) on ``cpus``."""
    os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int, *, with_children: bool = True) -> float:
    """User + system CPU of ``pid`` (all threads), and of its live children when asked."""
    total = 0.0
    pids = [pid, *(_children(pid) if with_children else [])]
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total
