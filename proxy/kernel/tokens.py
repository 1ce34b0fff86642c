"""What the decisions ask of the credentials feature, and what it answers: the one contract
between them (features never import each other; the composition root hands the credentials'
implementation to the decisions).

    verifier.kind_of(value)              "pat" | "key" | "svc" | None     (pure: the prefix)
    verifier.known(token, client_ip)     Principal | Refusal | None       (memory only)
    await verifier.verify(token, ip)     Principal | Refusal              (store, Kratos admin)

A ``TokenPrincipal`` is whom a valid token speaks for: its kind, its id (never the secret),
its owner (an identity id, an organisation id or a service name), its effective scopes and —
for a personal access token — its owner's roles. ``grants(scope)`` is the whole scope policy
(wildcards, and a PAT never beyond its owner's roles), so the decisions' ``scopes`` authorizer
needs nothing else. A ``TokenRefusal`` names why not; how that is said to the caller
(401 ``invalid_token``, 401 ``token_expired``, 429, 503) is the decisions' business.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

TokenKind = Literal["pat", "key", "svc"]
TOKEN_KINDS: tuple[TokenKind, ...] = ("pat", "key", "svc")

# ``action:resource`` (``read:users``), or an action's wildcard (``read:*``): what the rules
# file may require and the catalogue may list — one spelling for both features.
_SCOPE = re.compile(r"[a-z][a-z0-9_.\-]{0,31}:(?:\*|[a-z0-9_][a-z0-9_.\-/]{0,63})")


def valid_scope(scope: str) -> bool:
    return _SCOPE.fullmatch(scope) is not None


RefusalReason = Literal[
    "malformed",  # not our format or a wrong checksum: refused without a look-up
    "unknown",  # well formed, but no such token
    "revoked",
    "expired",
    "owner_inactive",  # a PAT whose identity is deleted or inactive in Kratos
    "rate_limited",  # the token's own limit, or too many unknown tokens from this address
    "unavailable",  # the store (or Kratos' admin API) cannot answer: fail closed
]


class TokenPrincipal(Protocol):
    @property
    def kind(self) -> TokenKind: ...

    @property
    def token_id(self) -> str: ...

    @property
    def owner(self) -> str: ...

    @property
    def scopes(self) -> tuple[str, ...]:
        """The effective scopes (what the upstream app is told the token may do)."""
        ...

    @property
    def roles(self) -> tuple[str, ...]:
        """A PAT's owner's roles (it inherits them); empty for API keys and service tokens."""
        ...

    @property
    def memo(self) -> dict[str, Any]:
        """Derived values (headers) computed once per cached principal, not per decision."""
        ...

    def grants(self, scope: str) -> bool:
        """Whether this token may act under ``scope``."""
        ...


@dataclass(frozen=True, slots=True)
class TokenRefusal:
    reason: RefusalReason
    retry_after: int = 0  # seconds, for ``rate_limited``


TokenVerdict = TokenPrincipal | TokenRefusal


class TokenVerifier(Protocol):
    def kind_of(self, value: str) -> TokenKind | None: ...

    def known(self, token: str, client_ip: Callable[[], str]) -> TokenVerdict | None:
        """The answer from memory alone (a cached token, a malformed one), without a
        coroutine; None when ``verify`` must ask. ``client_ip`` is read only if needed."""
        ...

    async def verify(self, token: str, client_ip: str) -> TokenVerdict: ...
