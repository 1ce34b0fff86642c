"""Whom a valid token speaks for (the kernel's ``TokenPrincipal``), and a PAT's owner as Kratos
knows them. Pure: built from a stored record, the owner's identity and the catalogue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from handlers.credentials.scopes import Catalogue, effective_pat_scopes, grants, pat_grants
from handlers.credentials.store import TokenRecord
from proxy.kernel.tokens import TokenKind

OwnerState = Literal["active", "inactive"]


@dataclass(frozen=True, slots=True)
class Owner:
    """A PAT's identity as Kratos' admin API answered: active or not, and its roles."""

    state: OwnerState
    roles: tuple[str, ...] = ()


def _dig(document: object, path: str) -> object:
    current = document
    for step in path.split(".") if path else ():
        if not isinstance(current, Mapping):
            return None
        current = current.get(step)
    return current


def owner_of(identity: Mapping[str, Any], roles_path: str) -> Owner:
    """The owner an admin-API identity describes: ``state`` and the roles at ``roles_path`` in
    ``metadata_public`` — a list or a comma-separated string, as the decisions read them."""
    state: OwnerState = "active" if identity.get("state", "active") == "active" else "inactive"
    value = _dig(identity.get("metadata_public"), roles_path)
    roles: tuple[str, ...] = ()
    if isinstance(value, str):
        roles = tuple(r.strip() for r in value.split(",") if r.strip())
    elif isinstance(value, list):
        roles = tuple(str(r) for r in value if isinstance(r, str | int) and str(r))
    return Owner(state, roles)


@dataclass(frozen=True, slots=True)
class Principal:
    kind: TokenKind
    token_id: str
    owner: str
    held: tuple[str, ...]  # the scopes the token was given
    roles: tuple[str, ...]  # a PAT's owner's, at the last look-up
    scopes: tuple[str, ...]  # effective: what the app is told
    catalogue: Catalogue = field(repr=False, compare=False)
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Every decision of a cached token asks the same few scopes: each answer is kept.
    _granted: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def grants(self, scope: str) -> bool:
        known = self._granted.get(scope)
        if known is None:
            if self.kind == "pat":
                known = pat_grants(self.catalogue, self.held, self.roles, scope)
            else:
                known = grants(self.held, scope)
            if len(self._granted) < 64:
                self._granted[scope] = known
        return known


def principal_of(record: TokenRecord, owner: Owner | None, catalogue: Catalogue) -> Principal:
    roles = owner.roles if owner is not None and record.kind == "pat" else ()
    scopes = (
        effective_pat_scopes(catalogue, record.scopes, roles)
        if record.kind == "pat"
        else record.scopes
    )
    return Principal(record.kind, record.id, record.owner, record.scopes, roles, scopes, catalogue)
