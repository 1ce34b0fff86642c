"""Reading the scope catalogue file (``TOKENS_SCOPES_FILE``); every error names the entry.

```toml
[[scopes]]
name = "read:resources"
description = "Read app resources"
roles = []                 # identity roles that may hold it in a PAT; empty = everyone

[[scopes]]
name = "admin:*"
description = "Full admin access"
roles = ["admin"]
```

Blocking (it reads a file): run at start-up, before the listeners, or in an executor.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from config.errors import ConfigError
from handlers.credentials.scopes import DEFAULT_CATALOGUE, Catalogue, Scope
from proxy.kernel.tokens import valid_scope


def parse_catalogue(text: str, source: str) -> Catalogue:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scope catalogue {source}: invalid TOML ({exc})") from None
    if set(document) - {"scopes"} or not isinstance(document.get("scopes"), list):
        raise ConfigError(f"scope catalogue {source}: expected only [[scopes]] entries")
    scopes: list[Scope] = []
    seen: set[str] = set()
    for number, entry in enumerate(document["scopes"], start=1):
        scopes.append(_entry(entry, f"scope catalogue {source}: entry #{number}", seen))
    if not scopes:
        raise ConfigError(f"scope catalogue {source}: no scopes")
    return Catalogue(tuple(scopes))


def _entry(entry: Any, where: str, seen: set[str]) -> Scope:
    if not isinstance(entry, dict) or set(entry) - {"name", "description", "roles"}:
        raise ConfigError(f"{where}: expected name, description and roles only")
    name = entry.get("name")
    if not isinstance(name, str) or not valid_scope(name):
        raise ConfigError(f"{where}: field 'name': expected action:resource, e.g. read:users")
    if name in seen:
        raise ConfigError(f"{where} ({name}): used twice")
    seen.add(name)
    description = entry.get("description", "")
    roles = entry.get("roles", [])
    if not isinstance(description, str):
        raise ConfigError(f"{where} ({name}): field 'description': expected a string")
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        raise ConfigError(f"{where} ({name}): field 'roles': expected a list of role names")
    return Scope(name, description, frozenset(roles))


def load_catalogue(path: str) -> Catalogue:
    """The catalogue in ``path``; the built-in one when ``path`` is empty."""
    if not path:
        return DEFAULT_CATALOGUE
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"scope catalogue {path}: cannot be read ({exc.strerror})") from None
    return parse_catalogue(text, path)
