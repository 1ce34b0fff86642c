"""``kratos-hooks`` command line: ``serve`` and ``config check`` (more subcommands plug in here)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from config import ConfigError, Settings, describe, load_settings
from handlers.credentials import cli as credentials_cli
from handlers.decisions import cli as decisions_cli
from handlers.hooks import cli as hooks_cli
from proxy import server
from proxy.guard import cli as backoff_cli
from proxy.kernel import logs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kratos-hooks",
        description="Brute-force backoff proxy, webhooks and auth decisions for Ory Kratos.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file (default: $KRATOS_HOOKS_CONFIG)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the public and internal listeners")
    serve.add_argument("--workers", type=int, help="processes sharing the ports (SO_REUSEPORT)")
    config = commands.add_parser("config", help="inspect the configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser("check", help="validate and print the effective settings")
    hooks_cli.add_commands(commands)
    decisions_cli.add_commands(commands)
    backoff_cli.add_commands(commands)
    credentials_cli.add_commands(commands)
    return parser


def _config_check(settings: Settings) -> int:
    rows = describe(settings)
    width = max(len(env) for env, _, _ in rows)
    for env, key, value in rows:
        print(f"{env:<{width}}  {value}    # {key}")
    print("configuration OK", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if getattr(args, "workers", None) is not None:
            server_settings = dataclasses.replace(settings.server, workers=args.workers)
            settings = dataclasses.replace(settings, server=server_settings)
    except ConfigError as exc:
        print(f"kratos-hooks: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if decisions_cli.handles(args):
        return decisions_cli.run(args, settings)
    if hooks_cli.handles(args):
        logs.configure(settings.log.level, settings.log.format)
        return hooks_cli.run(args, settings)
    if backoff_cli.handles(args):
        return backoff_cli.run(args, settings)
    if credentials_cli.handles(args):
        return credentials_cli.run(args, settings)
    if args.command == "config":
        return _config_check(settings)
    logs.configure(settings.log.level, settings.log.format)
    server.announce_defaults(settings)
    server.announce_native()
    try:
        return server.run(settings)
    except ConfigError as exc:  # found while starting, e.g. a broken access-rules file
        print(f"kratos-hooks: invalid configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
