"""Build ``Settings`` from a TOML file and the environment (the environment wins).

Every value is parsed from its field's type annotation, so a new setting needs no loader code.
A bad value raises ``ConfigError`` whose message is the one line start-up prints: the key,
the value (masked when secret) and what was expected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from config.errors import ConfigError
from config.redact import mask_url_credentials
from config.settings import ListenAddress, Settings

T = TypeVar("T")
CONFIG_ENV = "KRATOS_HOOKS_CONFIG"


def _parse_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("a boolean (true/false)")


def _parse_int(raw: object) -> int:
    if isinstance(raw, bool):
        raise ValueError("an integer")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError("an integer") from None


def _parse_float(raw: object) -> float:
    if isinstance(raw, bool):
        raise ValueError("a number")
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError("a number") from None
    if not math.isfinite(value):  # "nan" and "inf" parse, but no timeout or budget means them
        raise ValueError("a number (finite)")
    if value < 0:
        raise ValueError("a number >= 0")
    return value


def parse_listen(raw: object) -> ListenAddress:
    text = str(raw).strip()
    host, sep, port = text.rpartition(":")
    # ASCII digits only: str.isdigit() also holds for "²", which int() refuses.
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError("host:port, e.g. 0.0.0.0:8080 or [::]:8080")
    host = host.strip("[]") or "0.0.0.0"
    return ListenAddress(host, int(port))


def _parse_networks(raw: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    try:
        return tuple(
            ipaddress.ip_network(str(i).strip(), strict=False) for i in items if str(i).strip()
        )
    except ValueError:
        raise ValueError("comma-separated CIDRs, e.g. 10.0.0.0/8,fd00::/8") from None


def _parse_str_tuple(raw: object) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return tuple(str(i).strip() for i in items if str(i).strip())


def _parser_for(tp: Any) -> Callable[[object], Any]:
    if tp is bool:
        return _parse_bool
    if tp is int:
        return _parse_int
    if tp is float:
        return _parse_float
    if tp is str:
        return lambda raw: str(raw)
    if tp is ListenAddress:
        return parse_listen
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)

        def literal(raw: object) -> Any:
            text = str(raw).strip()
            for choice in choices:
                if text.lower() == str(choice).lower():
                    return choice
            raise ValueError("one of " + "|".join(str(c) for c in choices))

        return literal
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if inner is str:
            return _parse_str_tuple
        return _parse_networks
    raise TypeError(f"no parser for {tp!r}")  # a programming error, caught by the tests


def _mask(value: object, secret: bool) -> str:
    if not secret:
        return mask_url_credentials(repr(value))
    return "'***'" if value else "''"


def _build_section(
    cls: type[T], section: str, toml: Mapping[str, Any], env: Mapping[str, str]
) -> T:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    unknown = set(toml) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise ConfigError(f"[{section}] unknown key(s): {', '.join(sorted(unknown))}")
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        env_name: str = f.metadata["env"]
        secret = bool(f.metadata.get("secret"))
        if env_name in env:
            raw, where = env[env_name], env_name
        elif f.name in toml:
            raw, where = toml[f.name], f"[{section}] {f.name}"
        else:
            continue
        try:
            values[f.name] = _parser_for(hints[f.name])(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}={_mask(raw, secret)}: expected {exc}") from None
    return cls(**values)


def _validate(settings: Settings) -> None:
    for name in ("public_url", "admin_url"):
        url: str = getattr(settings.kratos, name)
        if not url.startswith(("http://", "https://")):
            env = f"KRATOS_{name.upper()}"
            shown = mask_url_credentials(repr(url))
            raise ConfigError(f"{env}={shown}: expected an http(s):// URL")
    prefix = settings.proxy.path_prefix
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ConfigError(
            f"PUBLIC_PATH_PREFIX={prefix!r}: expected a path like /ory/kratos/public"
            " (no trailing /)"
        )


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (``path``, else ``$KRATOS_HOOKS_CONFIG``) and overlay the environment."""
    env = os.environ if env is None else env
    path = path or env.get(CONFIG_ENV) or None
    document: dict[str, Any] = {}
    if path:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
    sections: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = set(document) - set(known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown section(s): {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(Settings)
    for name in known:
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [{name}] must be a table")
        sections[name] = _build_section(hints[name], name, table, env)
    settings = Settings(**sections)
    _validate(settings)
    return settings


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(env name, TOML key, masked value) for every setting, for ``config check``."""
    rows: list[tuple[str, str, str]] = []
    for section in dataclasses.fields(settings):
        value = getattr(settings, section.name)
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            continue
        for f in dataclasses.fields(value):
            current = getattr(value, f.name)
            if isinstance(current, tuple):
                shown = ",".join(str(item) for item in current)
            else:
                shown = str(current)
            if f.metadata.get("secret"):
                shown = "***" if current else "(unset)"
            else:  # e.g. KRATOS_ADMIN_URL=https://user:password@kratos-admin
                shown = mask_url_credentials(shown)
            rows.append((f.metadata["env"], f"[{section.name}] {f.name}", shown))
    return rows
