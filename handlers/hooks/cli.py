"""Operator commands: ``reconcile identities`` and ``outbox list|replay|purge``.

They build the same resources the service uses (outbox, resolvers, Kratos admin client,
publisher) from the same settings, so what they do is what the service would do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator

from config.settings import Settings
from handlers.hooks.install import make_outbox, make_resolvers, make_session, make_sync
from handlers.hooks.outbox import Entry, Outbox, OutboxUnavailable
from handlers.hooks.publisher import Publisher
from handlers.hooks.reconcile import default_progress, reconcile
from handlers.hooks.relay import Relay
from handlers.hooks.sync import IdentitySync
from proxy.logs import fingerprint

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
    listing = outbox_commands.add_parser("list", help="pending entries (oldest first)")
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
    admin_session = make_session(settings)
    platform_session = make_session(settings)
    chain = make_resolvers(settings, platform_session)
    try:
        yield make_sync(settings, admin_session, chain)
    finally:
        await chain.close()
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


def _row(entry: Entry, now: float) -> str:
    state = "delivered" if entry.delivered_at is not None else "pending"
    due = max(0.0, entry.next_attempt_at - now)
    return (
        f"{_shown_key(entry.key):<48} {entry.kind:<8} {state:<9} attempts={entry.attempts:<3}"
        f" age={now - entry.created_at:7.0f}s due_in={due:5.0f}s {entry.last_error}"
    )


async def _outbox(args: argparse.Namespace, settings: Settings) -> int:
    outbox = make_outbox(settings)
    await outbox.start()
    try:
        if args.outbox_command == "list":
            entries = await outbox.entries(include_delivered=args.all, limit=args.limit)
            now = time.time()
            for entry in entries:
                print(_row(entry, now))
            stats = await outbox.stats()
            print(f"{stats.total} pending ({outbox.backend})", file=sys.stderr)
            return 0
        if args.outbox_command == "purge":
            days = args.delivered_older_than
            retention = settings.hooks.once_retention if days is None else days * 86400
            count = await outbox.purge(
                delivered_before=time.time() - retention, pending=args.pending
            )
            print(f"purged {count} entries")
            return 0
        return await _replay(args, settings, outbox)
    finally:
        await outbox.close()


async def _replay(args: argparse.Namespace, settings: Settings, outbox: Outbox) -> int:
    keys = None
    if args.identity:
        pattern = settings.hooks.welcome_pattern
        keys = [k for i in args.identity for k in (f"event:{pattern}:{i}", f"identity:{i}")]
    marked = await outbox.replay(keys)
    publisher = None
    if settings.store.rabbitmq_url:
        publisher = Publisher(
            settings.store.rabbitmq_url,
            settings.hooks.queue,
            reconnect_interval=settings.hooks.amqp_reconnect_interval,
        )
        await publisher.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(publisher.reconnected.wait(), CONNECT_WAIT)
    try:
        async with _sync(settings) as sync:
            relay = Relay(
                outbox,
                publisher,
                sync,
                interval=0,
                max_backoff=settings.hooks.relay_max_backoff,
                publish_timeout=max(settings.hooks.publish_timeout, 5.0),
                retention=settings.hooks.once_retention,
            )
            try:
                if keys is None:
                    result = await relay.drain()
                else:
                    everything = await outbox.entries(include_delivered=False, limit=1_000_000)
                    result = await relay.deliver([e for e in everything if e.key in keys])
                blocked = ""
            except Exception as exc:  # Blocked, or anything the relay could not handle
                result, blocked = None, str(exc)
    finally:
        if publisher is not None:
            await publisher.close()
    stats = await outbox.stats()
    delivered = result.delivered if result else 0
    print(f"replayed {marked}: delivered {delivered}, still pending {stats.total}")
    if blocked:
        print(f"kratos-hooks: stopped: {blocked}", file=sys.stderr)
    return 0 if stats.total == 0 else 1
