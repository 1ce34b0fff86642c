"""``kratos-hooks rules check [FILE]``: validate an access-rules file before deploying it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from config.settings import Settings
from handlers.decisions.paths import ALLOWANCES
from handlers.decisions.rules_loader import RulesError, load_rules_file


def add_commands(commands: Any) -> None:
    rules = commands.add_parser("rules", help="the decisions endpoint's access rules")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate a rules file and list its rules")
    check.add_argument("file", nargs="?", help="default: DECISIONS_RULES_FILE")


def handles(args: argparse.Namespace) -> bool:
    return bool(args.command == "rules")


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or settings.decisions.rules_file
    if not path:
        print(
            "kratos-hooks: no rules file given and DECISIONS_RULES_FILE is not set", file=sys.stderr
        )
        return 2
    unset: list[str] = []
    try:
        rules = load_rules_file(path, unset_env=unset)
    except RulesError as exc:
        print(f"kratos-hooks: {exc}", file=sys.stderr)
        return 2
    for number, rule in enumerate(rules.rules, start=1):
        allows = [key for key, form in ALLOWANCES.items() if rule.allowed_forms & form]
        extra = f" ({', '.join(allows)})" if allows else ""
        chain = "/".join(rule.authenticators)
        print(f"{number:>3}. {rule.id}: {chain} → {rule.authorizer.kind}{extra}")
    for name in sorted(set(unset)):
        print(f"note: {name} is not set here; the service needs it set", file=sys.stderr)
    print(f"{len(rules.rules)} rule(s), {len(rules.webhooks)} webhook(s): OK", file=sys.stderr)
    return 0
