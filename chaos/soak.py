"""``make soak``: the same load for a long while, no faults, watching the process grow.

Every ``SOAK_INTERVAL`` seconds (30) the service's resident memory, open file descriptors and
the p99 latency of the answers of that interval are recorded; after ``SOAK_SECONDS`` (600)
the run fails when, from the first sample (the process warmed up by one interval of load) to
the last, memory grew by more than ``RSS_BOUND_MIB`` (24 MiB) or descriptors by more than
``FD_BOUND`` (8); when the p99 of the last quarter of the intervals (their median) is above
twice that of the first quarter plus ``P99_SLACK_MS`` (25 ms); or when any request failed
(5xx or no answer) or a welcome event was lost or doubled.

The decisions rotate over a pool of sessions (``TOKEN_POOL``) rather than minting new ones,
so the session cache reaches its steady size in the first interval and what grows after is
the service's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import aiohttp

from chaos.load import Load
from chaos.probe import error_lines, machine, open_fds, outbox_pending, rss_mib
from chaos.stack import Timings, consume, stack
from handlers.hooks.events import message_id

RSS_BOUND_MIB = 24.0
FD_BOUND = 8
P99_SLACK_MS = 25.0
TOKEN_POOL = 200
PATTERN = "USER_SIGN_UP_WELCOME"


@dataclass
class Sample:
    at_s: float
    rss_mib: float
    fds: int
    requests: int
    p99_ms: float


@dataclass
class SoakSummary:
    seconds: float
    interval: float
    samples: list[Sample]
    failed_requests: int
    events_answered: int
    lost: int
    doubled: int
    error_lines: int
    machine: str
    failures: list[str] = field(default_factory=list)

    def judge(self) -> None:
        first, last = self.samples[0], self.samples[-1]
        if last.rss_mib - first.rss_mib > RSS_BOUND_MIB:
            self.failures.append(
                f"RSS grew {last.rss_mib - first.rss_mib:.1f} MiB (bound {RSS_BOUND_MIB:g})"
            )
        if last.fds - first.fds > FD_BOUND:
            self.failures.append(f"open fds grew by {last.fds - first.fds} (bound {FD_BOUND})")
        early, late = self.p99_ends()
        if late > 2 * early + P99_SLACK_MS:
            self.failures.append(f"p99 {late:.1f} ms > 2 x {early:.1f} + {P99_SLACK_MS:g} ms")
        if self.failed_requests:
            self.failures.append(f"{self.failed_requests} requests failed (5xx or no answer)")
        if self.lost or self.doubled:
            self.failures.append(f"events lost {self.lost}, doubled {self.doubled}")

    def p99_ends(self) -> tuple[float, float]:
        """The median p99 of the first and of the last quarter of the samples: one slow
        interval (a neighbour's burst on a shared machine) is noise, a trend is not."""
        quarter = max(2 if len(self.samples) >= 4 else 1, len(self.samples) // 4)
        first = sorted(s.p99_ms for s in self.samples[:quarter])
        last = sorted(s.p99_ms for s in self.samples[-quarter:])
        # Of an even count, the upper median early and the lower one late: in a short run's
        # pair of samples, one slow interval at either end is taken for the noise it is.
        return first[len(first) // 2], last[(len(last) - 1) // 2]

    def print(self) -> None:
        print(f"soak: {self.seconds:.0f} s, a sample every {self.interval:g} s ({self.machine})")
        print("| at s | RSS MiB | open fds | requests | p99 ms |")
        print("|---:|---:|---:|---:|---:|")
        for s in self.samples:
            print(f"| {s.at_s:.0f} | {s.rss_mib:.1f} | {s.fds} | {s.requests} | {s.p99_ms:.1f} |")
        first, last = self.samples[0], self.samples[-1]
        early, late = self.p99_ends()
        print(
            f"growth first -> last: RSS {last.rss_mib - first.rss_mib:+.1f} MiB (bound"
            f" {RSS_BOUND_MIB:g}), fds {last.fds - first.fds:+d} (bound {FD_BOUND}), p99 (median"
            f" of the first and last quarter) {early:.1f} -> {late:.1f} ms (bound 2x +"
            f" {P99_SLACK_MS:g} ms)"
        )
        print(
            f"failed requests {self.failed_requests}; welcome events {self.events_answered},"
            f" lost {self.lost}, doubled {self.doubled}; ERROR lines {self.error_lines}"
        )
        for failure in self.failures:
            print(f"FAILED: {failure}")


def p99(latencies: list[float]) -> float:
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def soak(seconds: float, interval: float) -> SoakSummary:
    async with stack(Timings()) as stack_, aiohttp.ClientSession() as http:
        load = Load(stack_, token_pool=TOKEN_POOL)
        await load.start()
        started = time.monotonic()  # the soak's seconds are of load, not of the stack's start
        pid = stack_.service.pid
        samples: list[Sample] = []
        failed = 0
        seen = 0
        while time.monotonic() - started < seconds:
            await asyncio.sleep(interval)
            window = load.answers[seen:]
            seen = len(load.answers)
            failed += sum(1 for a in window if a.status == 0 or a.status >= 500)
            samples.append(
                Sample(
                    at_s=time.monotonic() - started,
                    rss_mib=rss_mib(pid),
                    fds=open_fds(pid),
                    requests=len(window),
                    p99_ms=p99([a.latency for a in window]),
                )
            )
            # The generator's own memory stays flat: the stand-in's request log is not needed.
            stack_.kratos.requests.clear()
        await load.stop()
        url = stack_.service.internal_url
        for _ in range(150):
            if await outbox_pending(http, url) == 0:
                break
            await asyncio.sleep(0.2)
        copies = Counter(m.message_id for m in await consume(stack_.queue))
        expected = {message_id(PATTERN, identity) for identity in load.verified}
        summary = SoakSummary(
            seconds=time.monotonic() - started,
            interval=interval,
            samples=samples,
            failed_requests=failed,
            events_answered=len(expected),
            lost=len(expected - set(copies)),
            doubled=sum(n - 1 for n in copies.values()),
            error_lines=len(error_lines(stack_.log_file)),
            machine=machine(),
        )
    summary.judge()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaos.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    interval = float(os.environ.get("SOAK_INTERVAL", "30"))
    summary = asyncio.run(soak(seconds, min(interval, seconds)))
    summary.print()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(asdict(summary), out, indent=2)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
