"""``kratos-hooks backoff status|clear <identifier>`` and ``… --ip <address>``: for support
staff helping a locked-out user or a blocked network. Reads the same Redis buckets the proxy
writes (needs ``REDIS_URL`` and the servers' ``BACKOFF_SECRET``); never falls back to a local
store, never prints the identifier, only the fingerprint this service's logs carry. An
address is shown as the group the guard judges it by (IPv6 per /64).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import sys
import time

from config.settings import Settings
from proxy.guard.core import Guard
from proxy.guard.identity import Keyer, address_group
from proxy.guard.policy import BucketPolicy
from proxy.guard.redis_store import RedisStore
from proxy.guard.store import MemoryStore, StoreUnavailable
from proxy.guard.support import reset, reset_address
from proxy.kernel.errors import DependencyUnavailable
from proxy.kernel.logs import fingerprint
from proxy.kernel.redis import RedisClient, close_client, make_client

CLI_TIMEOUT = 5.0  # seconds per Redis round trip: support tooling may wait longer than a login


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backoff = commands.add_parser("backoff", help="inspect or clear an account's login backoff")
    actions = backoff.add_subparsers(dest="backoff_command", required=True)
    status = actions.add_parser("status", help="failures and wait of an identifier or address")
    clear = actions.add_parser(
        "clear", help="forget an identifier's failures (all addresses) or an address's"
    )
    for action in (status, clear):
        action.add_argument("identifier", nargs="?", help="the login identifier (any case)")
        action.add_argument("--ip", help="an address instead: its bucket (IPv6: its /64)")


def handles(args: argparse.Namespace) -> bool:
    return bool(args.command == "backoff")


def _usage_error(args: argparse.Namespace) -> str | None:
    if (args.identifier is None) == (args.ip is None):
        return "give either an identifier or --ip <address>"
    if args.ip is not None:
        try:
            ipaddress.ip_address(args.ip)
        except ValueError:
            return f"--ip {args.ip!r} is not an IP address"
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if problem := _usage_error(args):
        print(f"kratos-hooks backoff: {problem}", file=sys.stderr)
        return 2
    if not settings.backoff.secret:
        print(
            "kratos-hooks: BACKOFF_SECRET is not set, so the servers' bucket names cannot be "
            "computed; run with the servers' BACKOFF_SECRET",
            file=sys.stderr,
        )
        return 2
    if not settings.store.redis_url:
        print(
            "kratos-hooks: REDIS_URL is not set: the in-memory store lives inside the server "
            "process (restarting it clears every bucket)",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_run(args, settings))
    except (StoreUnavailable, DependencyUnavailable) as exc:
        print(f"kratos-hooks: Redis is unavailable ({exc})", file=sys.stderr)
        return 1


def _guard(settings: Settings, client: RedisClient) -> Guard:
    # Fail closed: support tooling must never report on or clear a throwaway local store.
    strict = dataclasses.replace(
        settings, backoff=dataclasses.replace(settings.backoff, fail_closed=True)
    )
    store = RedisStore(client, settings.store.redis_key_prefix, timeout=CLI_TIMEOUT)
    return Guard(strict, store, fallback=MemoryStore(1), keyer=Keyer(settings.backoff.secret))


def _bucket(guard: Guard, args: argparse.Namespace) -> tuple[str, str, BucketPolicy]:
    """(how the bucket is shown, its key, its policy) for an identifier or ``--ip``."""
    names = guard.names
    if args.ip is not None:
        return f"address {address_group(args.ip)}", names.address_key(args.ip), names.policies.ip
    tag = fingerprint(names.hashed_identifier(args.identifier))
    return f"identifier {tag}", names.identifier_key(args.identifier), names.policies.identifier


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    # One server, a Sentinel-managed master or a Cluster, as the servers reach it.
    client = make_client(settings.store.redis_url, socket_timeout=CLI_TIMEOUT)
    try:
        guard = _guard(settings, client)
        label, key, policy = _bucket(guard, args)
        if args.backoff_command == "clear":
            if args.ip is not None:
                cleared = await reset_address(guard, args.ip, cause="cli")
            else:
                cleared = await reset(guard, args.identifier, cause="cli")
            print(f"{label}: cleared ({cleared} keys)")
            return 0
        report = await guard.report(key)
        if report is None:
            print(f"{label}: no recorded failures")
            return 0
        wait = max(0.0, report.last_failure + policy.wait(report.failures) - time.time())
        last = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(report.last_failure))
        print(
            f"{label}: {report.failures} failures (free: {policy.free}), "
            f"last at {last}, {wait:.0f}s left to wait, {report.in_flight} in flight, "
            f"forgotten in {report.expires_in:.0f}s"
        )
        return 0
    finally:
        await close_client(client)
