"""RUNBOOK.md against what it points at: every alert's runbook annotation lands on a section,
every in-page link resolves, every CLI command it tells on-call to run exists with the flags
it names, and every log message it quotes is one the code writes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import yaml

from proxy.cli import _parser
from tests.ops.chart import PLAIN_RULES, ROOT

RUNBOOK = (ROOT / "RUNBOOK.md").read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


ANCHORS = {slug(line.lstrip("#")) for line in RUNBOOK.splitlines() if line.startswith("#")}


def test_every_alert_links_to_a_section_of_the_runbook() -> None:
    groups = yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "RUNBOOK.md"
        assert anchor == rule["alert"].lower()
        assert anchor in ANCHORS, rule["alert"]


def test_every_link_inside_the_runbook_resolves() -> None:
    links = re.findall(r"\]\(#([^)]+)\)", RUNBOOK)
    assert links
    assert [link for link in links if link not in ANCHORS] == []


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_the_runbook_names_exists_with_its_flags() -> None:
    commands = re.findall(r"`kratos-hooks ([^`]+)`", RUNBOOK)
    assert len(commands) > 10
    for command in commands:
        parser = _parser()
        words = command.split()
        while (choices := _subparsers(parser)) and words and words[0] in choices:
            parser = choices[words.pop(0)]
        assert not _subparsers(parser), f"incomplete command: {command}"
        known = {option for action in parser._actions for option in action.option_strings}
        flags = [w for w in words if w.startswith("--")]
        assert [f for f in flags if f not in known] == [], command


def test_every_log_message_the_runbook_quotes_is_written_by_the_code() -> None:
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for package in ("proxy", "handlers")
        for path in (ROOT / package).rglob("*.py")
    )
    quoted = re.findall(r'`"([^"`]+)"', RUNBOOK)
    assert len(quoted) > 15
    missing = []
    for message in quoted:
        prefix = " ".join(message.split()).split("…")[0].rstrip(": ")
        if f'"{prefix}' not in sources:
            missing.append(message)
    assert missing == []


def test_the_runbook_covers_each_dependency_outage() -> None:
    for section in ("redis-down", "kratos-down", "broker-down", "database-down"):
        assert section in ANCHORS
    assert "a-rules-file-rejected" in ANCHORS
    assert Path(ROOT / "deploy" / "grafana" / "kratos-hooks.json").exists()


def test_the_readme_lists_every_alert() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(KratosHooks\w+)` \|", readme, flags=re.M))
    groups = yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))["groups"]
    assert listed == {r["alert"] for g in groups for r in g["rules"]}
