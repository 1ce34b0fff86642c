"""The embedded outbox: an append-only JSON-lines file, fsync'd after every change.

Each line is the full new state of one entry (``{"op":"set","entry":…}``) or its removal
(``{"op":"del","key":…}``); loading replays the lines, last one wins, and a torn last line
(a kill in the middle of a write) is skipped. The file is rewritten compactly at start and
when it has grown well past the live entries (temp file, fsync, atomic rename, fsync of the
directory). Every file operation runs in the default executor: the event loop never blocks
on the disk. One process owns the file (use ``DATABASE_URL`` for several replicas).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from handlers.hooks.outbox import Entry, Kind, OutboxUnavailable, Stats

T = TypeVar("T")
log = logging.getLogger("kratos_hooks.hooks.spool")
FILENAME = "outbox.jsonl"


def spool_filename() -> str:
    """``outbox.jsonl``, or ``outbox-worker-N.jsonl`` in a forked worker: one file per process
    (the same one again after a restart, as worker names are stable)."""
    name = multiprocessing.current_process().name
    return f"outbox-{name}.jsonl" if name.startswith("worker-") else FILENAME


def replay_lines(lines: Sequence[bytes]) -> dict[str, Entry]:
    """The entries a spool file's lines describe (pure)."""
    entries: dict[str, Entry] = {}
    for line in lines:
        try:
            record = orjson.loads(line)
            if record["op"] == "set":
                entry = Entry.from_json(record["entry"])
                entries[entry.key] = entry
            elif record["op"] == "del":
                entries.pop(str(record["key"]), None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a torn write from a killed process
    return entries


class SpoolOutbox:
    backend = "spool"

    def __init__(self, directory: str, *, retention: float, filename: str = FILENAME) -> None:
        self.path = Path(directory) / filename
        self.retention = retention
        self.entries_by_key: dict[str, Entry] = {}
        self._file: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self._records = 0
        self._leases: dict[str, float] = {}

    async def _io(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, func, *args)
        except OSError as exc:
            raise OutboxUnavailable(f"spool {exc.strerror or type(exc).__name__}") from exc

    # --- blocking helpers (executor only) -------------------------------------------------
    def _load(self) -> dict[str, Entry]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            return {}
        return replay_lines(self.path.read_bytes().splitlines())

    def _rewrite(self, entries: list[Entry]) -> IO[bytes]:
        if self._file is not None:
            self._file.close()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as out:
            for entry in entries:
                out.write(orjson.dumps({"op": "set", "entry": entry.as_json()}) + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return self.path.open("ab")

    def _append(self, line: bytes) -> None:
        assert self._file is not None
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        async with self._lock:
            try:
                self.entries_by_key = await self._io(self._load)
                await self._compact()
            except OutboxUnavailable as exc:
                # The service still starts; every write then fails loudly (503 to Kratos).
                log.error(
                    "spool outbox unusable", extra={"path": str(self.path), "error": str(exc)}
                )
                return
        pending = sum(1 for e in self.entries_by_key.values() if e.delivered_at is None)
        log.info("spool outbox loaded", extra={"path": str(self.path), "pending": pending})

    async def close(self) -> None:
        async with self._lock:
            await self._io(self._close_file)

    async def _compact(self) -> None:
        horizon = time.time() - self.retention
        for key in [
            k
            for k, e in self.entries_by_key.items()
            if e.delivered_at is not None and e.delivered_at < horizon
        ]:
            del self.entries_by_key[key]
        live = sorted(self.entries_by_key.values(), key=lambda e: e.created_at)
        self._file = await self._io(self._rewrite, live)
        self._records = len(live)

    async def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            raise OutboxUnavailable("spool is not open")
        await self._io(self._append, orjson.dumps(record) + b"\n")
        self._records += 1
        if self._records > 4 * len(self.entries_by_key) + 1000:
            await self._compact()

    async def _save(self, entry: Entry) -> None:
        await self._write({"op": "set", "entry": entry.as_json()})

    # --- the Outbox protocol --------------------------------------------------------------
    async def put(self, entry: Entry, *, reserve: bool, hold: float = 0.0) -> bool:
        async with self._lock:
            known = self.entries_by_key.get(entry.key)
            if known is not None and reserve:
                return False
            entry.next_attempt_at = time.time() + hold
            self.entries_by_key[entry.key] = entry
            try:
                await self._save(entry)
            except OutboxUnavailable:
                if known is None:
                    del self.entries_by_key[entry.key]
                else:
                    self.entries_by_key[entry.key] = known
                raise
            return True

    async def claim(self, limit: int, lease: float, kinds: Sequence[Kind]) -> list[Entry]:
        now = time.time()
        async with self._lock:
            due = [
                e
                for e in self.entries_by_key.values()
                if e.delivered_at is None
                and e.kind in kinds
                and e.next_attempt_at <= now
                and self._leases.get(e.key, 0.0) <= now
            ]
            due.sort(key=lambda e: e.created_at)
            for entry in due[:limit]:
                # Leases stay in memory: after a restart every pending entry is due at once.
                self._leases[entry.key] = now + lease
            return [Entry.from_json(e.as_json()) for e in due[:limit]]

    async def _update(self, key: str, change: Callable[[Entry], None]) -> None:
        async with self._lock:
            self._leases.pop(key, None)
            entry = self.entries_by_key.get(key)
            if entry is None:
                return
            change(entry)
            await self._save(entry)

    async def delivered(self, key: str) -> None:
        def mark(entry: Entry) -> None:
            # Only the key is still needed (the once-per-identity memory): drop the payload.
            entry.delivered_at = time.time()
            entry.last_error = ""
            entry.payload = {}

        await self._update(key, mark)

    async def retry_later(self, key: str, delay: float, error: str) -> None:
        def later(entry: Entry) -> None:
            entry.attempts += 1
            entry.next_attempt_at = time.time() + delay
            entry.last_error = error[:500]

        await self._update(key, later)

    async def release(self, key: str) -> None:
        async with self._lock:
            entry = self.entries_by_key.get(key)
            if entry is None or entry.delivered_at is not None:
                return
            del self.entries_by_key[key]
            await self._write({"op": "del", "key": key})

    async def stats(self) -> Stats:
        pending: dict[str, int] = {}
        oldest: float | None = None
        for entry in self.entries_by_key.values():
            if entry.delivered_at is None:
                pending[entry.kind] = pending.get(entry.kind, 0) + 1
                oldest = entry.created_at if oldest is None else min(oldest, entry.created_at)
        return Stats(pending, oldest)

    async def entries(self, *, include_delivered: bool, limit: int) -> list[Entry]:
        chosen = [
            Entry.from_json(e.as_json())
            for e in self.entries_by_key.values()
            if include_delivered or e.delivered_at is None
        ]
        return sorted(chosen, key=lambda e: e.created_at)[:limit]

    async def replay(self, keys: Sequence[str] | None) -> int:
        wanted = None if keys is None else set(keys)
        count = 0
        async with self._lock:
            for entry in self.entries_by_key.values():
                if entry.delivered_at is None and (wanted is None or entry.key in wanted):
                    entry.next_attempt_at = time.time()
                    self._leases.pop(entry.key, None)
                    await self._save(entry)
                    count += 1
        return count

    async def purge(self, *, delivered_before: float | None, pending: bool) -> int:
        async with self._lock:
            doomed = [
                key
                for key, e in self.entries_by_key.items()
                if (e.delivered_at is None and pending)
                or (
                    e.delivered_at is not None
                    and delivered_before is not None
                    and e.delivered_at < delivered_before
                )
            ]
            for key in doomed:
                del self.entries_by_key[key]
            if doomed:
                await self._compact()
            return len(doomed)
