"""Who is asking: the subject an authenticator found, built from Kratos' session JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

AAL_ORDER = {"aal0": 0, "aal1": 1, "aal2": 2, "aal3": 3}


def dig(document: object, path: str) -> object:
    """The value at a dotted path (list items by index); None when any step is missing."""
    current = document
    for step in path.split(".") if path else ():
        if isinstance(current, Mapping):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Subject:
    """An authenticated session, or the anonymous subject (``session`` empty)."""

    session: Mapping[str, Any] = field(default_factory=dict)
    roles_path: str = "roles"
    # Shared with the cached whoami answer this subject came from (see headers.py).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def anonymous(self) -> bool:
        return not self.session

    @property
    def id(self) -> str:
        identity = self.session.get("identity")
        value = identity.get("id") if isinstance(identity, Mapping) else None
        return value if isinstance(value, str) else ""

    @property
    def email(self) -> str:
        value = dig(self.session, "identity.traits.email")
        return value if isinstance(value, str) else ""

    @property
    def session_id(self) -> str:
        value = self.session.get("id")
        return value if isinstance(value, str) else ""

    @property
    def aal(self) -> str:
        value = self.session.get("authenticator_assurance_level")
        return value if isinstance(value, str) else "aal0"

    @property
    def auth_time(self) -> str:
        value = self.session.get("authenticated_at")
        return value if isinstance(value, str) else ""

    @property
    def roles(self) -> tuple[str, ...]:
        value = dig(dig(self.session, "identity.metadata_public"), self.roles_path)
        if isinstance(value, str):
            return tuple(r.strip() for r in value.split(",") if r.strip())
        if isinstance(value, list):
            return tuple(str(r) for r in value if isinstance(r, str | int) and str(r))
        return ()

    @property
    def verified(self) -> bool:
        addresses = dig(self.session, "identity.verifiable_addresses")
        if not isinstance(addresses, list):
            return False
        return any(isinstance(a, Mapping) and a.get("verified") is True for a in addresses)

    @property
    def expires_at(self) -> datetime | None:
        return parse_time(self.session.get("expires_at"))


def meets_aal(actual: str, required: str) -> bool:
    return AAL_ORDER.get(actual, 0) >= AAL_ORDER.get(required, 2)
