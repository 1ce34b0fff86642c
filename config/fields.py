"""The building blocks of settings sections: ``setting()`` and the shared value types.

Section modules (``config/hooks.py``, ``config/decisions.py`` …) import from here, and
``config/settings.py`` assembles the sections, so no import cycle can form.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def setting(default: Any, env: str, *, secret: bool = False, doc: str = "") -> Any:
    """A dataclass field that knows its environment variable."""
    return field(
        default=default,
        repr=not secret,
        metadata={"env": env, "secret": secret, "doc": doc},
    )


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
