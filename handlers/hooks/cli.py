"""Operator commands: ``reconcile identities`` and ``outbox list|replay|purge``.

They build the same resources the service uses (outbox, resolvers, Kratos admin client,
publisher) from the same settings, so what they do is what the service would do.

The outbox commands see every store: the database (``DATABASE_URL``) and every spool file
in ``SPOOL_DIR`` — one per worker with ``WORKERS > 1``. ``list`` only reads, so it is safe
beside the running service; ``replay`` and ``purge`` rewrite a spool file, so they take it
only when no live process owns it (``spool.py``'s lock) and name the files they left alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from config.settings import Settings
from handlers.hooks.install import (
    make_database_outbox,
    make_deliveries,
    make_resolvers,
    make_sync,
)
from handlers.hooks.outbox import Entry, Outbox, OutboxUnavailable
from handlers.hooks.publisher import Publisher
from handlers.hooks.reconcile import default_progress, reconcile
from handlers.hooks.relay import PassResult, Relay
from handlers.hooks.spool import SpoolBusy, SpoolOutbox, purgeable, read_spool, spool_files
from handlers.hooks.sync import IdentitySync
from proxy.kernel.http_clients import api_session
from proxy.kernel.logs import fingerprint

CONNECT_WAIT = 10.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = commands.add_parser("reconcile", help="repair what the Kratos hooks missed")
    rec_commands = rec.add_subparsers(dest="reconcile_command", required=True)
    identities = rec_commands.add_parser(
        "identities", help="resolve every Kratos identity and repair its metadata_public"
    )
    identities.add_argument("--dry-run", action="store_true", help="report, write nothing")
    identities.add_argument("--concurrency", type=int, default=8, metavar="N")
    identities.add_argument("--page-size", type=int, default=250, metavar="N")

    outbox = commands.add_parser("outbox", help="inspect and drive the hooks' outbox")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = outbox_commands.add_parser(
        "list", help="pending entries of every store and spool file (oldest first)"
    )
    listing.add_argument("--all", action="store_true", help="include delivered entries")
    listing.add_argument("--limit", type=int, default=100)
    replay = outbox_commands.add_parser("replay", help="deliver pending entries now")
    replay.add_argument("--identity", action="append", metavar="ID", help="only this identity")
    purge = outbox_commands.add_parser("purge", help="delete entries")
    purge.add_argument(
        "--delivered-older-than",
        type=float,
        metavar="DAYS",
        help="delivered entries older than this (default: the once-per-identity retention)",
    )
    purge.add_argument("--pending", action="store_true", help="also drop UNDELIVERED entries")
    purge.add_argument("--yes", action="store_true", help="confirm --pending")


def handles(args: argparse.Namespace) -> bool:
    return args.command in ("reconcile", "outbox")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "reconcile":
        return asyncio.run(_reconcile(args, settings))
    if args.outbox_command == "purge" and args.pending and not args.yes:
        print("outbox purge --pending drops undelivered work: add --yes", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_outbox(args, settings))
    except OutboxUnavailable as exc:
        print(f"kratos-hooks: outbox unavailable: {exc}", file=sys.stderr)
        return 1


@contextlib.asynccontextmanager
async def _sync(settings: Settings) -> AsyncIterator[IdentitySync]:
    admin_session = api_session(settings)
    platform_session = api_session(settings)
    sync = make_sync(settings, admin_session, make_resolvers(settings, platform_session))
    try:
        yield sync
    finally:
        await sync.close()
        await platform_session.close()
        await admin_session.close()


async def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    async with _sync(settings) as sync:
        if not sync.chain.resolvers:
            print(
                "kratos-hooks: no resolver configured "
                "(HOOKS_PLATFORM_DATABASE_URL / HOOKS_PLATFORM_API_URL)",
                file=sys.stderr,
            )
            return 2
        try:
            summary = await reconcile(
                sync,
                dry_run=args.dry_run,
                concurrency=max(1, args.concurrency),
                page_size=max(1, args.page_size),
                progress=default_progress(args.dry_run),
            )
        except Exception as exc:  # the walk itself failed (Kratos down …): say so, exit 1
            print(f"kratos-hooks: reconcile stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(summary.line(dry_run=args.dry_run))
    return 1 if summary.failed else 0


def _shown_key(key: str) -> str:
    # Keys end with the identity id: operators get a stable tag, logs never see the id.
    head, _, identity_id = key.rpartition(":")
    return f"{head}:{fingerprint(identity_id)}" if head else fingerprint(key)


def _row(entry: Entry, now: float, where: str) -> str:
    state = "delivered" if entry.delivered_at is not None else "pending"
    due = max(0.0, entry.next_attempt_at - now)
    return (
        f"{_shown_key(entry.key):<48} {entry.kind:<8} {state:<9} attempts={entry.attempts:<3}"
        f" age={now - entry.created_at:7.0f}s due_in={due:5.0f}s in={where} {entry.last_error}"
    )


DATABASE = "database"


@dataclass(slots=True)
class Stores:
    """The stores an operator command may change, and what it had to leave alone."""

    opened: list[tuple[str, Outbox]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # one message per file left alone
    busy_pending: int = 0  # pending entries in the files left alone

    async def pending(self) -> int:
        return self.busy_pending + sum([(await o.stats()).total for _, o in self.opened])


@contextlib.asynccontextmanager
async def _stores(
    settings: Settings, touches: Callable[[Entry], bool], refusal: str
) -> AsyncIterator[Stores]:
    """Every store, each spool file owned exclusively; a file a live process owns is only
    read, and named (``refusal``) when it holds entries the command would have changed."""
    directory = settings.store.spool_dir
    stores = Stores()
    async with contextlib.AsyncExitStack() as stack:
        for name in await asyncio.to_thread(spool_files, directory):
            spool = SpoolOutbox(
                directory, retention=settings.hooks.once_retention, filename=name, exclusive=True
            )
            try:
                await spool.open()
            except SpoolBusy:
                entries = await asyncio.to_thread(read_spool, directory, name)
                stores.busy_pending += sum(e.delivered_at is None for e in entries)
                if left := sum(touches(e) for e in entries):
                    stores.refused.append(f"{name}: {left} {refusal}")
                continue
            stack.push_async_callback(spool.close)
            stores.opened.append((name, spool))
        database = make_database_outbox(settings)
        if database is not None:
            await database.start()
            stack.push_async_callback(database.close)
            stores.opened.append((DATABASE, database))
        yield stores


def _report_refusals(stores: Stores) -> None:
    for message in stores.refused:
        print(f"kratos-hooks: {message}", file=sys.stderr)


async def _outbox(args: argparse.Namespace, settings: Settings) -> int:
    if args.outbox_command == "list":
        return await _list(args, settings)
    if args.outbox_command == "purge":
        return await _purge(args, settings)
    keys = None
    if args.identity:
        pattern = settings.hooks.welcome_pattern
        keys = [k for i in args.identity for k in (f"event:{pattern}:{i}", f"identity:{i}")]
    wanted = None if keys is None else set(keys)

    def touches(entry: Entry) -> bool:
        return entry.delivered_at is None and (wanted is None or entry.key in wanted)

    refusal = (
        "pending entries not replayed: a running kratos-hooks process owns this spool file "
        "(its relay delivers them); stop it to replay them from here"
    )
    async with _stores(settings, touches, refusal) as stores:
        return await _replay(settings, stores, keys)


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    # Read-only: spool files are read without their lock, so this is safe beside the service.
    directory = settings.store.spool_dir
    rows: list[tuple[Entry, str]] = []
    pending = 0
    for name in await asyncio.to_thread(spool_files, directory):
        entries = await asyncio.to_thread(read_spool, directory, name)
        pending += sum(e.delivered_at is None for e in entries)
        rows += [(e, name) for e in entries if args.all or e.delivered_at is None]
    backend = "spool"
    database = make_database_outbox(settings)
    if database is not None:
        backend = "postgres"
        await database.start()
        try:
            shown = await database.entries(include_delivered=args.all, limit=args.limit)
            rows += [(e, DATABASE) for e in shown]
            pending += (await database.stats()).total
        finally:
            await database.close()
    rows.sort(key=lambda row: row[0].created_at)
    now = time.time()
    for entry, where in rows[: args.limit]:
        print(_row(entry, now, where))
    print(f"{pending} pending ({backend})", file=sys.stderr)
    return 0


async def _purge(args: argparse.Namespace, settings: Settings) -> int:
    days = args.delivered_older_than
    retention = settings.hooks.once_retention if days is None else days * 86400
    before = time.time() - retention

    def touches(entry: Entry) -> bool:
        return purgeable(entry, delivered_before=before, pending=args.pending)

    refusal = (
        "entries not purged: a running kratos-hooks process owns this spool file; "
        "stop it to purge them"
    )
    async with _stores(settings, touches, refusal) as stores:
        count = 0
        for _, outbox in stores.opened:
            count += await outbox.purge(delivered_before=before, pending=args.pending)
    print(f"purged {count} entries")
    _report_refusals(stores)
    return 1 if stores.refused else 0


async def _replay(settings: Settings, stores: Stores, keys: Sequence[str] | None) -> int:
    marked = 0
    for _, outbox in stores.opened:
        marked += await outbox.replay(keys)
    publisher = await Publisher.started(settings)
    if publisher is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(publisher.reconnected.wait(), CONNECT_WAIT)
    delivered, blocked = 0, ""
    try:
        async with _sync(settings) as sync:
            for _, outbox in stores.opened:
                deliveries = make_deliveries(settings, outbox, publisher)
                relay = Relay(
                    outbox,
                    deliveries,
                    sync,
                    interval=0,
                    max_backoff=settings.hooks.relay_max_backoff,
                    retention=settings.hooks.once_retention,
                )
                try:
                    result = await _replay_one(relay, keys)
                except Exception as exc:  # Blocked, or anything the relay could not handle
                    blocked = str(exc)
                    break
                finally:
                    # Outcomes still unknown stay claimed: a live relay takes them after the
                    # lease, rather than this command waiting for a reconnect.
                    await deliveries.close(CONNECT_WAIT)
                delivered += result.delivered
    finally:
        if publisher is not None:
            await publisher.close()
    pending = await stores.pending()
    print(f"replayed {marked}: delivered {delivered}, still pending {pending}")
    if blocked:
        print(f"kratos-hooks: stopped: {blocked}", file=sys.stderr)
    _report_refusals(stores)
    return 0 if pending == 0 else 1


async def _replay_one(relay: Relay, keys: Sequence[str] | None) -> PassResult:
    if keys is None:
        return await relay.drain()
    return await relay.deliver(keys)
