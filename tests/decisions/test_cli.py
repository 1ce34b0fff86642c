"""``kratos-hooks rules check``: a rules file validated before it is deployed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from tests.decisions.conftest import RULES


def test_valid_rules_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    assert main(["rules", "check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "1. health: anonymous → allow" in out
    assert "7 rule(s), 0 webhook(s): OK" in err


def test_broken_rules_name_rule_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "api"\nauthenticators = ["session_token"]\nauthorizer = 1\n')
    assert main(["rules", "check", str(path)]) == 2
    assert "rule #1 ('api'): field 'authorizer'" in capsys.readouterr().err


def test_serve_refuses_a_broken_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nid = "api"\nauthenticators = ["session_token"]\n')
    env = {
        **os.environ,
        "DECISIONS_RULES_FILE": str(path),
        "PUBLIC_LISTEN": "127.0.0.1:0",
        "INTERNAL_LISTEN": "127.0.0.1:0",
    }
    env.pop("KRATOS_HOOKS_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "rule #1 ('api'): field 'authorizer'" in done.stderr.splitlines()[-1]


def test_check_reads_a_secrets_reference_not_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORP_AUTHZ_TOKEN", raising=False)
    path = tmp_path / "rules.toml"
    path.write_text(
        '[webhooks.corp]\nurl = "https://authz.internal/authorize"\n'
        'bearer_token_env = "CORP_AUTHZ_TOKEN"\n'
        '[[rules]]\nid = "registry"\npaths = ["/v2/**"]\nauthenticators = ["anonymous"]\n'
        'authorizer = { type = "remote", webhook = "corp" }\n'
    )
    assert main(["rules", "check", str(path)]) == 0  # the CI machine has no such secret
    err = capsys.readouterr().err
    assert "CORP_AUTHZ_TOKEN is not set here; the service needs it set" in err
    assert "1 rule(s), 1 webhook(s): OK" in err
    path.write_text(path.read_text().replace('"CORP_AUTHZ_TOKEN"', '"not a name"'))
    assert main(["rules", "check", str(path)]) == 2
    assert "bearer_token_env" in capsys.readouterr().err


def test_a_host_with_a_port_is_refused_it_could_never_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rules]]\nid = "local"\nhosts = ["127.0.0.1:9999"]\nauthenticators = ["anonymous"]\n'
        'authorizer = { type = "allow" }\n'
    )
    assert main(["rules", "check", str(path)]) == 2
    assert "host names without a port ('127.0.0.1:9999': write '127.0.0.1')" in (
        capsys.readouterr().err
    )
