"""Settings: TOML + environment, env wins, one clear line per bad value, secrets masked."""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from config import ConfigError, ListenAddress, describe, load_settings
from proxy.cli import main
from proxy.kernel.access_log import redact_query
from proxy.kernel.logs import ConsoleFormatter, JsonFormatter
from proxy.kernel.view import strip_prefix


def test_defaults_without_file_or_env() -> None:
    settings = load_settings(env={})
    assert settings.kratos.public_url == "http://127.0.0.1:4433"
    assert settings.server.public_listen == ListenAddress("0.0.0.0", 8080)
    assert settings.server.internal_listen == ListenAddress("0.0.0.0", 8081)
    assert settings.store.redis_url == ""


def test_toml_file_and_env_env_wins(tmp_path: Path) -> None:
    path = tmp_path / "kh.toml"
    path.write_text(
        '[kratos]\npublic_url = "http://kratos:4433"\nadmin_url = "http://kratos:4434"\n'
        '[server]\ntrusted_proxies = ["10.0.0.0/8"]\n'
    )
    settings = load_settings(path, env={"KRATOS_PUBLIC_URL": "http://other:4433"})
    assert settings.kratos.public_url == "http://other:4433"
    assert settings.kratos.admin_url == "http://kratos:4434"
    assert settings.server.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "kh.toml"
    path.write_text('[log]\nformat = "console"\n')
    assert load_settings(env={"KRATOS_HOOKS_CONFIG": str(path)}).log.format == "console"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PUBLIC_LISTEN": "8080"}, "PUBLIC_LISTEN='8080': expected host:port"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,nope"}, "TRUSTED_PROXIES='10.0.0.0/8,nope': expected"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml': expected one of json|console"),
        ({"WORKERS": "two"}, "WORKERS='two': expected an integer"),
        ({"UPSTREAM_READ_TIMEOUT": "-1"}, "expected a number >= 0"),
        ({"KRATOS_PUBLIC_URL": "kratos:4433"}, "KRATOS_PUBLIC_URL='kratos:4433': expected an http"),
        ({"PUBLIC_PATH_PREFIX": "ory/"}, "PUBLIC_PATH_PREFIX='ory/'"),
    ],
)
def test_invalid_values_name_key_value_and_expectation(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_secret_values_never_echoed_in_errors_or_repr() -> None:
    settings = load_settings(env={"REDIS_URL": "redis://:hunter2@redis:6379/0"})
    assert "hunter2" not in repr(settings)
    assert all("hunter2" not in value for _, _, value in describe(settings))


def test_unknown_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "kh.toml"
    path.write_text("[kratos]\npublic_uri = 'http://x'\n")
    with pytest.raises(ConfigError, match=r"\[kratos\] unknown key\(s\): public_uri"):
        load_settings(path, env={})


def test_config_check_prints_masked_settings(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    os.environ["KRATOS_ADMIN_TOKEN"] = "ory_pat_supersecret"
    try:
        assert main(["config", "check"]) == 0
    finally:
        del os.environ["KRATOS_ADMIN_TOKEN"]
    out = capsys.readouterr().out
    assert "KRATOS_ADMIN_TOKEN" in out
    assert "supersecret" not in out


def test_config_check_fails_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    os.environ["INTERNAL_LISTEN"] = "nowhere"
    try:
        assert main(["config", "check"]) == 2
    finally:
        del os.environ["INTERNAL_LISTEN"]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kratos-hooks: invalid configuration: INTERNAL_LISTEN='nowhere': "
        "expected host:port, e.g. 0.0.0.0:8080 or [::]:8080"
    ]


@pytest.mark.parametrize(
    ("raw", "prefix", "expected"),
    [
        ("/self-service/login?flow=1", "", "/self-service/login?flow=1"),
        ("/ory/kratos/public/sessions/whoami", "/ory/kratos/public", "/sessions/whoami"),
        ("/ory/kratos/public?x=1", "/ory/kratos/public", "/?x=1"),
        ("/ory/kratos/public", "/ory/kratos/public", "/"),
        ("/ory/kratos/publicity", "/ory/kratos/public", None),
        ("/other", "/ory/kratos/public", None),
    ],
)
def test_strip_prefix(raw: str, prefix: str, expected: str | None) -> None:
    assert strip_prefix(raw, prefix) == expected


def test_sensitive_query_values_are_redacted_in_logs() -> None:
    assert redact_query("token=abc&return_to=%2Fhome") == "token=%2A%2A%2A&return_to=%2Fhome"
    assert "s3cret" not in redact_query("flow=1&code=s3cret")
    # Kratos' session-token exchange codes, and a return_to carrying the app's own token.
    assert "s3cret" not in redact_query("init_code=s3cret-1&return_to_code=s3cret-2&flow=1")
    nested = "return_to=" + quote("https://app.example/cb?token=s3cret&tab=2", safe="")
    shown = unquote(unquote(redact_query(nested)))
    assert "s3cret" not in shown and shown.startswith("return_to=https://app.example/cb?")
    assert "tab=2" in shown
    deeper = "return_to=" + quote("https://a.example/?next=https://b.example/?code=s3cret", safe="")
    assert "s3cret" not in unquote(unquote(unquote(redact_query(deeper))))
    assert redact_query("return_to=http://[s3cret") == "return_to=%2A%2A%2A"  # never raises


def test_config_check_and_errors_mask_credentials_inside_urls(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRATOS_ADMIN_URL", "https://kh:admin-s3cret@kratos-admin:4434")
    monkeypatch.setenv("HOOKS_PLATFORM_API_URL", "https://api-t0ken-s3cret@platform.example")
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert "https://kh:***@kratos-admin:4434" in out and "https://***@platform.example" in out
    for env in (
        {"KRATOS_PUBLIC_URL": "ftp://u:pub-s3cret@kratos"},
        {"HOOKS_PLATFORM_URL": "ftp://u:pf-s3cret@platform"},
    ):
        with pytest.raises(ConfigError) as info:
            load_settings(env=env)
        assert "s3cret" not in str(info.value) and "u:***@" in str(info.value)


@pytest.mark.parametrize("formatter", [JsonFormatter(), ConsoleFormatter()])
def test_log_lines_never_carry_a_password_inside_a_url(formatter: logging.Formatter) -> None:
    try:
        raise ConnectionError("cannot reach amqp://guest:amqp-s3cret@broker:5672/")
    except ConnectionError:
        record = logging.getLogger("kratos_hooks.test").makeRecord(
            "kratos_hooks.test",
            logging.ERROR,
            __file__,
            1,
            "connect to %s failed",
            ("redis://:redis-s3cret@cache:6379/0",),
            sys.exc_info(),
            extra={"dsn": "postgresql://kh:pg-s3cret@db/kh", "reasons": ["https://t0k-s3cret@x"]},
        )
    line = formatter.format(record)
    assert "s3cret" not in line
    assert "redis://:***@cache" in line and "amqp://guest:***@broker" in line
    assert "postgresql://kh:***@db" in line and "https://***@x" in line


def test_shipped_example_config_loads() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "config.example.toml"
    settings = load_settings(example, env={})
    assert settings.kratos.public_url == "http://kratos-public.identity.svc:4433"
    assert settings.server.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.decisions.rules_file == "/etc/kratos-hooks/rules.toml"
    assert settings.backoff.login_ui_url == "https://app.example.com/login"
    assert settings.hooks.platform_url == "https://app.example.com"
    assert settings.store.redis_url == ""  # secrets come from the environment
