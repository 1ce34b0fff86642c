"""The embedded outbox: an append-only JSON-lines file, fsync'd after every change.

Each line is the full new state of one entry (``{"op":"set","entry":…}``) or its removal
(``{"op":"del","key":…}``); loading replays the lines, last one wins, and a torn last line
(a kill in the middle of a write) is skipped. The file is rewritten compactly at start and
when it has grown well past the live entries (temp file, fsync, atomic rename, fsync of the
directory). Every file operation runs in the default executor: the event loop never blocks
on the disk. One process owns the file (use ``DATABASE_URL`` for several replicas).

Ownership is an ``flock`` on a sidecar ``<file>.lock`` (the spool file itself is replaced by
each compaction, so it cannot carry the lock): the service holds it shared for its lifetime,
an operator command (``outbox replay|purge``) takes it exclusive and refuses a file a live
process holds; the kernel drops the lock when its holder dies, even by ``kill -9``. Reading a
file without the lock is safe: appends are whole lines and a compaction is an atomic rename.

Claims (leases) live in memory only, as the file has one process: a restarted process finds
every pending entry due at once. Within the process, ``delivery.py`` keeps one publish in
flight per entry, and a lease keeps the relay off an entry while the hook or it works on it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from handlers.hooks.hook_metrics import OUTBOX_ERRORS
from handlers.hooks.outbox import Entry, Kind, OutboxUnavailable, Stats

T = TypeVar("T")
log = logging.getLogger("kratos_hooks.hooks.spool")
FILENAME = "outbox.jsonl"
SPOOL_NAME = re.compile(r"outbox(-worker-[\w.-]+)?\.jsonl")
LOCK_POLL = 0.2


class SpoolBusy(OutboxUnavailable):
    """A running process owns the spool file: it must not be rewritten under its feet."""


def spool_filename() -> str:
    """``outbox.jsonl``, or ``outbox-worker-N.jsonl`` in a forked worker: one file per process
    (the same one again after a restart, as worker names are stable)."""
    name = multiprocessing.current_process().name
    return f"outbox-{name}.jsonl" if name.startswith("worker-") else FILENAME


def spool_files(directory: str) -> list[str]:
    """Names of every spool file in ``directory`` — the single process' one and each
    worker's — sorted (blocking: call it from an executor)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if SPOOL_NAME.fullmatch(p.name) and p.is_file())


def read_spool(directory: str, filename: str) -> list[Entry]:
    """The entries of a spool file, read without owning it (blocking: from an executor)."""
    path = Path(directory) / filename
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return sorted(replay_lines(data.splitlines()).values(), key=lambda e: e.created_at)


def purgeable(entry: Entry, *, delivered_before: float | None, pending: bool) -> bool:
    """Whether ``purge`` deletes ``entry`` (pure)."""
    if entry.delivered_at is None:
        return pending
    return delivered_before is not None and entry.delivered_at < delivered_before


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

    def __init__(
        self,
        directory: str,
        *,
        retention: float,
        filename: str = FILENAME,
        exclusive: bool = False,
    ) -> None:
        self.path = Path(directory) / filename
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.retention = retention
        # Shared for the service (several processes wrongly sharing a file keep working as
        # before), exclusive for an operator command that rewrites the file.
        self.exclusive = exclusive
        self._owner: int | None = None
        self.entries_by_key: dict[str, Entry] = {}
        self._file: IO[bytes] | None = None
        self._lock = asyncio.Lock()
        self._records = 0
        self._leases: dict[str, float] = {}

    async def _io(self, func: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, func, *args)
        except OSError as exc:
            OUTBOX_ERRORS.labels(self.backend).inc()
            raise OutboxUnavailable(f"spool {exc.strerror or type(exc).__name__}") from exc

    # --- blocking helpers (executor only) -------------------------------------------------
    def _take_ownership(self) -> bool:
        if self._owner is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        self._owner = fd
        return True

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
        if self._owner is not None:
            os.close(self._owner)  # releases the lock
            self._owner = None

    # --- lifecycle ------------------------------------------------------------------------
    async def _own(self, *, wait: bool) -> None:
        warned = False
        while not await self._io(self._take_ownership):
            if not wait:
                raise SpoolBusy(f"{self.path.name} is in use by a running kratos-hooks process")
            if not warned:
                # Only an operator command takes the lock exclusively, and only briefly.
                log.warning(
                    "spool file locked by an operator command: waiting for it",
                    extra={"path": str(self.path)},
                )
                warned = True
            await asyncio.sleep(LOCK_POLL)
        self.entries_by_key = await self._io(self._load)
        await self._compact()

    async def open(self) -> None:
        """An operator command's way in: own the file now or raise ``SpoolBusy``."""
        async with self._lock:
            try:
                await self._own(wait=False)
            except OutboxUnavailable:
                await self._io(self._close_file)
                raise

    async def start(self) -> None:
        async with self._lock:
            try:
                await self._own(wait=True)
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
            OUTBOX_ERRORS.labels(self.backend).inc()
            raise OutboxUnavailable("spool is not open")
        await self._io(self._append, orjson.dumps(record) + b"\n")
        self._records += 1
        if self._records > 4 * len(self.entries_by_key) + 1000:
            await self._compact()

    async def _save(self, entry: Entry) -> None:
        await self._write({"op": "set", "entry": entry.as_json()})

    # --- the Outbox protocol --------------------------------------------------------------
    async def put(
        self, entry: Entry, *, reserve: bool, hold: float = 0.0, lease: float = 0.0
    ) -> bool:
        async with self._lock:
            known = self.entries_by_key.get(entry.key)
            if known is not None and reserve:
                return False
            now = time.time()
            entry.next_attempt_at = now + hold
            self.entries_by_key[entry.key] = entry
            try:
                await self._save(entry)
            except OutboxUnavailable:
                if known is None:
                    del self.entries_by_key[entry.key]
                else:
                    self.entries_by_key[entry.key] = known
                raise
            if lease > 0:
                self._leases[entry.key] = now + lease
            return True

    async def claim(
        self,
        limit: int,
        lease: float,
        kinds: Sequence[Kind],
        keys: Sequence[str] | None = None,
    ) -> list[Entry]:
        now = time.time()
        wanted = None if keys is None else set(keys)
        async with self._lock:
            due = [
                e
                for e in self.entries_by_key.values()
                if e.delivered_at is None
                and e.kind in kinds
                and (wanted is None or e.key in wanted)
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
                if purgeable(e, delivered_before=delivered_before, pending=pending)
            ]
            for key in doomed:
                del self.entries_by_key[key]
            if doomed:
                await self._compact()
            return len(doomed)
