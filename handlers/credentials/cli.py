"""``kratos-hooks db migrate`` and ``kratos-hooks tokens create-service|list|revoke|show``.

They use the store, the revocation announcement and the settings the service uses, so a
token revoked here is refused by every running replica within a second (Redis pub/sub,
Postgres NOTIFY, or the embedded file the replicas poll). A new service token's secret is
printed once, alone on stdout (``TOKEN=$(kratos-hooks tokens create-service …)``); everything
else goes to stderr or is a table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from handlers.credentials import migrate
from handlers.credentials.service import DAY, Credentials
from handlers.credentials.store import NotMigrated, StoreUnavailable, TokenRecord
from handlers.credentials.store_sqlite import default_path
from proxy.kernel.bus import Bus
from proxy.kernel.redis import make_client
from proxy.kernel.tokens import valid_scope


def add_commands(commands: Any) -> None:
    db = commands.add_parser("db", help="kratos-hooks' own database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    mig = db_commands.add_parser("migrate", help="apply the token store's schema migrations")
    mig.add_argument("--dry-run", action="store_true", help="list what would be applied")

    tokens = commands.add_parser("tokens", help="personal access tokens, API keys, service tokens")
    sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = sub.add_parser("create-service", help="issue a service token (printed once)")
    create.add_argument("service", help="the service's name (X-Service-Name)")
    create.add_argument("--scope", action="append", required=True, metavar="SCOPE")
    create.add_argument("--name", help="a display name (default: the service)")
    create.add_argument("--expires-in-days", type=int, metavar="N", help="default: never")
    create.add_argument("--rate-limit", type=int, default=0, metavar="PER_MINUTE")
    listing = sub.add_parser("list", help="tokens, newest first")
    listing.add_argument("--kind", choices=("pat", "key", "svc"))
    listing.add_argument("--owner", help="identity id, organisation or service")
    listing.add_argument("--revoked", action="store_true", help="include revoked (30 days)")
    revoke = sub.add_parser("revoke", help="revoke a token (refused everywhere within 1 s)")
    revoke.add_argument("token_id")
    revoke.add_argument("--reason", default="revoked")
    show = sub.add_parser("show", help="one token and its audit trail")
    show.add_argument("token_id")


def handles(args: argparse.Namespace) -> bool:
    return args.command in {"db", "tokens"}


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "db":
        return _migrate(settings, dry_run=args.dry_run)
    commands: dict[str, Callable[[Credentials, argparse.Namespace], Awaitable[int]]] = {
        "create-service": _create,
        "list": _list,
        "revoke": _revoke,
        "show": _show,
    }
    return asyncio.run(_with_credentials(settings, commands[args.tokens_command], args))


def _migrate(settings: Settings, *, dry_run: bool) -> int:
    store = settings.store
    schema = settings.tokens.database_schema
    try:
        if store.database_url:
            if dry_run:
                applied = migrate.pending_postgres(store.database_url, schema)
            else:
                applied = migrate.migrate_postgres(store.database_url, schema)
        else:
            path = settings.tokens.sqlite_file or default_path(store.spool_dir)
            applied = (
                migrate.pending(migrate.sqlite_uri(path))
                if dry_run
                else migrate.migrate_sqlite(path)
            )
    except Exception as exc:  # the drivers' errors: a connection or permission problem
        print(f"kratos-hooks: migration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    verb = "would apply" if dry_run else "applied"
    for migration in applied:
        print(f"{verb} {migration}")
    print(
        f"schema {'current' if not applied else 'migrated'}: {', '.join(migrate.migration_ids())}",
        file=sys.stderr,
    )
    return 0


async def _with_credentials(
    settings: Settings,
    command: Callable[[Credentials, argparse.Namespace], Awaitable[int]],
    args: argparse.Namespace,
) -> int:
    redis = make_client(settings.store.redis_url) if settings.store.redis_url else None
    credentials = Credentials(settings, redis, Bus())
    try:
        await credentials.store.open()
        return await command(credentials, args)
    except NotMigrated as exc:
        print(f"kratos-hooks: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"kratos-hooks: the token store is unavailable ({exc})", file=sys.stderr)
        return 1
    finally:
        await credentials.close()
        if redis is not None:
            await redis.aclose()


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


async def _create(credentials: Credentials, args: argparse.Namespace) -> int:
    bad = [s for s in args.scope if not valid_scope(s)]
    if bad:
        print(f"kratos-hooks: {bad[0]!r} is not a scope (action:resource)", file=sys.stderr)
        return 2
    days = args.expires_in_days
    if days is not None and not 1 <= days <= credentials.config.max_days:
        print(
            f"kratos-hooks: --expires-in-days: 1 to {credentials.config.max_days}", file=sys.stderr
        )
        return 2
    made = await credentials.issue(
        "svc",
        owner=args.service,
        name=args.name or args.service,
        scopes=sorted(set(args.scope)),
        expires_at=None if days is None else time.time() + days * DAY,
        created_by="cli",
        origin="cli",
        rate_limit=max(0, args.rate_limit),
    )
    print(made.secret)
    print(
        f"issued {made.record.id} for service {args.service!r} ({made.record.hint}); "
        "the token above is shown only now",
        file=sys.stderr,
    )
    return 0


def _row(record: TokenRecord) -> str:
    state = (
        "revoked" if record.revoked_at else ("expired" if record.expired(time.time()) else "active")
    )
    return (
        f"{record.id}  {record.kind}  {state:<7}  {record.owner[:36]:<36}  {record.name[:24]:<24}  "
        f"{','.join(record.scopes)}  expires {_when(record.expires_at)}  "
        f"last used {_when(record.last_used_at)}"
    )


async def _list(credentials: Credentials, args: argparse.Namespace) -> int:
    since = time.time() - 30 * DAY if args.revoked else None
    records = await credentials.store.listing(kind=args.kind, owner=args.owner, revoked_since=since)
    for record in records:
        print(_row(record))
    print(f"{len(records)} token(s)", file=sys.stderr)
    return 0


async def _revoke(credentials: Credentials, args: argparse.Namespace) -> int:
    revoked = await credentials.revoke(args.token_id, by="cli", reason=args.reason)
    if revoked is None:
        print(f"kratos-hooks: no active token {args.token_id}", file=sys.stderr)
        return 1
    print(f"revoked {revoked.id} ({revoked.hint}, {revoked.kind} of {revoked.owner})")
    return 0


async def _show(credentials: Credentials, args: argparse.Namespace) -> int:
    record = await credentials.store.by_id(args.token_id)
    if record is None:
        print(f"kratos-hooks: no token {args.token_id}", file=sys.stderr)
        return 1
    for key, value in record.public().items():
        shown = _when(value) if key.endswith("_at") and value is not None else value
        print(f"{key:<22} {shown if shown not in (None, '') else '-'}")
    print("audit:")
    for entry in await credentials.store.history(record.id):
        print(f"  {_when(entry.at)}  {entry.action:<12} by {entry.actor}  {entry.detail or ''}")
    return 0
