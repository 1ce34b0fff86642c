"""Who is asking: the subject an authenticator found — a Kratos session (its JSON), a token
(the credentials feature's principal), or nobody (the anonymous subject)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from proxy.kernel.sessions.whoami import parse_time
from proxy.kernel.tokens import TokenPrincipal

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


@dataclass(frozen=True, slots=True)
class Subject:
    """An authenticated session, a token, or the anonymous subject (neither)."""

    session: Mapping[str, Any] = field(default_factory=dict)
    roles_path: str = "roles"
    # Shared with the cached whoami answer this subject came from (see headers.py).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    token: TokenPrincipal | None = None

    @classmethod
    def of_token(cls, principal: TokenPrincipal) -> Subject:
        """The token's subject, made once per cached principal (not once per decision)."""
        subject: Subject | None = principal.memo.get("subject")
        if subject is None:
            subject = principal.memo["subject"] = cls(memo=principal.memo, token=principal)
        return subject

    @property
    def anonymous(self) -> bool:
        return not self.session and self.token is None

    @property
    def id(self) -> str:
        """The identity (a session's, a PAT's owner), or the organisation or service a key or
        service token speaks for."""
        if self.token is not None:
            return self.token.owner
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
        if self.token is not None:
            return self.token.roles  # a PAT inherits its owner's; keys and services have none
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
