"""Fuzzing the settings loader (``config.load_settings``) with generated environments and
TOML files.

Properties: the answer is ``Settings`` or a ``ConfigError`` — never another exception — whose
message is the one line start-up prints: it names the setting (its environment variable, its
``[section] key``, or the config file) and never shows a secret's value.
"""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from config import ConfigError, Settings, load_settings
from tests.fuzz import toml_text
from tests.fuzz.support import profile


def _fields() -> list[tuple[str, str, str, bool]]:
    """(section, key, env name, secret) of every setting."""
    hints = typing.get_type_hints(Settings)
    out = []
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(hints[section.name]):
            out.append((section.name, f.name, f.metadata["env"], bool(f.metadata.get("secret"))))
    return out


FIELDS = _fields()
SECRETS = {env for _, _, env, secret in FIELDS if secret}
SECTIONS = sorted({section for section, *_ in FIELDS})
KEYS = {section: [key for s, key, _, _ in FIELDS if s == section] for section in SECTIONS}

# Values of the kinds settings take, and their near misses.
plausible = st.sampled_from(
    [
        "", "0", "1", "-1", "2.5", "1e309", "nan", "inf", "-inf", "true", "no", "maybe",
        "65535", "65536", "²", "١٢", "0x10", "127.0.0.1:0", "[::1]:8080", ":", "host:",
        "10.0.0.0/8", "10.0.0.0/33,fd00::/8", "::/0", "http://kratos:4433",
        "https://user:pw@kratos", "redis://:pw@127.0.0.1:6379/0", "ftp://x", "/ory/kratos",
        "/trailing/", "allow", "interrupt", "login=interrupt", "nowhere=allow", "postgres,api",
        "ldap", "json", "console", "legacy", "4000006,x", "a" * 300,
    ]
)  # fmt: skip
env_values = st.one_of(plausible, plausible, st.text(max_size=20))
environments = st.dictionaries(st.sampled_from([env for _, _, env, _ in FIELDS]), env_values)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    parts = []
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "typo"]), unique=True, max_size=3)):
        keys = KEYS.get(section, ["x"])
        body = draw(
            st.dictionaries(
                st.sampled_from([*keys, "unknown_key"]),
                st.one_of(plausible, toml_text.values),
                max_size=4,
            )
        )
        parts.append(toml_text.table(f"[{section}]", body))
    if draw(st.integers(0, 9)) == 4:
        parts.append(draw(st.sampled_from(["kratos = 1\n", "[[server]]\n", "= broken\n"])))
    return "\n".join(parts)


def check(env: dict[str, str], document: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path: Path | None = None
        if document is not None:
            path = Path(folder) / "kratos-hooks.toml"
            path.write_text(document, encoding="utf-8")
        try:
            settings = load_settings(path, env=env)
        except ConfigError as exc:
            message = str(exc)
            assert message and "\n" not in message, message
            named = [e for _, _, e, _ in FIELDS if e in message]
            named += [f"[{s}] {k}" for s, k, _, _ in FIELDS if f"[{s}] {k}" in message]
            assert named or "config file" in message or "[" in message, message
            shown = {v for k, v in env.items() if k not in SECRETS}  # may be named, rightly
            for name in SECRETS & env.keys():
                value = env[name].strip()
                if name not in message or len(value) < 6:
                    continue  # another setting's line: its own text may contain the value
                if not any(value in other for other in shown):
                    assert value not in message, f"{name}'s value shown: {message}"
            return
        assert isinstance(settings, Settings)


@profile(300)
@given(environments)
def test_generated_environments_load_or_fail_in_one_line(env: dict[str, str]) -> None:
    check(env, None)


@profile(300)
@given(toml_documents(), environments)
def test_generated_config_files_load_or_fail_in_one_line(
    document: str, env: dict[str, str]
) -> None:
    check(env, document)


def test_the_findings_of_this_fuzzer_are_refused_by_name() -> None:
    cases = {
        "PUBLIC_LISTEN": ("127.0.0.1:²", "expected host:port"),
        "UPSTREAM_READ_TIMEOUT": ("nan", "expected a number"),
        "HOOKS_BUDGET": ("inf", "expected a number"),
    }
    for name, (raw, expected) in cases.items():
        try:
            load_settings(env={name: raw})
        except ConfigError as exc:
            assert str(exc).startswith(f"{name}=") and expected in str(exc), str(exc)
        else:
            raise AssertionError(f"{name}={raw} accepted")
