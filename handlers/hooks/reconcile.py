"""``kratos-hooks reconcile identities``: the safety net for metadata the hooks missed.

Walks every Kratos identity (keyset pages), resolves each one and repairs missing or stale
``metadata_public`` with the same minimal merge as the hook — so a second run changes
nothing, and running it beside the service is safe (both write the same values).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from handlers.hooks.resolvers import ResolutionFailed
from handlers.hooks.sync import IdentitySync
from proxy.kernel.kratos_admin import AdminUnavailable, IdentityGone


@dataclass(slots=True)
class Summary:
    seen: int = 0
    correct: int = 0
    repaired: int = 0
    not_found: int = 0
    failed: int = 0

    def line(self, *, dry_run: bool) -> str:
        repaired = "to repair" if dry_run else "repaired"
        return (
            f"seen {self.seen}, already correct {self.correct}, {repaired} {self.repaired}, "
            f"not found {self.not_found}, failed {self.failed}"
        )


class Progress:
    """A self-overwriting line on a terminal; a plain line every ``every`` seconds otherwise."""

    def __init__(self, out: TextIO, *, dry_run: bool, every: float = 2.0) -> None:
        self.out = out
        self.dry_run = dry_run
        self.tty = out.isatty()
        self.every = every
        self.started = time.monotonic()
        self.last = 0.0

    def update(self, summary: Summary, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and not self.tty and now - self.last < self.every:
            return
        if not force and self.tty and now - self.last < 0.1:
            return
        self.last = now
        rate = summary.seen / max(0.001, now - self.started)
        text = f"{summary.line(dry_run=self.dry_run)} ({rate:.0f}/s)"
        if self.tty:
            filled = int(20 * (summary.correct + summary.repaired) / max(1, summary.seen))
            bar = "#" * filled + "." * (20 - filled)
            self.out.write(f"\r[{bar}] {text}\x1b[K")
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


async def reconcile(
    sync: IdentitySync,
    *,
    dry_run: bool,
    concurrency: int = 8,
    page_size: int = 250,
    progress: Progress | None = None,
) -> Summary:
    summary = Summary()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=concurrency * 4)

    async def worker() -> None:
        while (identity := await queue.get()) is not None:
            await _one(sync, identity, summary, dry_run=dry_run)
            if progress is not None:
                progress.update(summary)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, concurrency))]
    try:
        async for page in sync.admin.identities(page_size):
            for identity in page:
                await queue.put(identity)
    finally:
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
        if progress is not None:
            progress.update(summary, force=True)
            progress.finish()
    return summary


async def _one(
    sync: IdentitySync, identity: dict[str, Any], summary: Summary, *, dry_run: bool
) -> None:
    summary.seen += 1
    identity_id = str(identity.get("id", ""))
    try:
        result = await sync.run(identity_id, identity, write=not dry_run)
    except IdentityGone:
        summary.not_found += 1  # deleted while we walked
        return
    except (ResolutionFailed, AdminUnavailable):
        summary.failed += 1
        return
    if result.outcome == "unchanged":
        summary.correct += 1
    elif result.outcome in ("not_found", "not_persisted"):
        summary.not_found += 1
    else:
        summary.repaired += 1


def default_progress(dry_run: bool) -> Progress:
    return Progress(sys.stderr, dry_run=dry_run)
