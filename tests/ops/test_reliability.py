"""RELIABILITY.md against what it points at: every test it names as the proof of a promise
exists (``path::name``), every command it names is a make target or module of the checkout,
and every RUNBOOK.md section it links to exists — so a renamed test or section breaks this
test, not the document's claims."""

from __future__ import annotations

import re

from tests.ops.chart import ROOT
from tests.ops.test_runbook import ANCHORS

DOCUMENT = (ROOT / "RELIABILITY.md").read_text(encoding="utf-8")


def test_every_test_the_document_names_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", DOCUMENT)
    assert len(named) >= 30
    missing = []
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        if not re.search(rf"^(async )?def {name}\(", source, re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_runbook_section_it_links_to_exists() -> None:
    links = re.findall(r"RUNBOOK\.md#([\w-]+)", DOCUMENT)
    assert links
    assert [link for link in links if link not in ANCHORS] == []


def test_the_commands_it_names_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in set(re.findall(r"`make (\w+)", DOCUMENT)):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    for module in set(re.findall(r"python -m ([\w.]+)", DOCUMENT)) - {"pytest"}:
        path = ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").exists() or (path / "__main__.py").exists(), module
