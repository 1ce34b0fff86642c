"""Scopes: ``action:resource`` names, wildcards, and what a token may do. Pure functions.

    read:users       one action on one resource
    read:*           the action on every resource (seed guide §6.3); ``admin:*`` likewise
                     grants every ``admin:…`` scope — never ``read:…`` or ``write:…``

A required scope is granted when the token holds it exactly or holds its action's wildcard.
A required *wildcard* is granted only by that wildcard itself: ``read:users`` does not add up
to ``read:*``.

A personal access token never goes beyond its owner: the catalogue says which identity roles
may hold each scope (``Catalogue.may_hold``), and a PAT's scope counts only while its owner's
current roles allow it — a user who loses the admin role loses the ``admin:*`` of their tokens
at the next look-up, without anyone touching the tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def wildcard_of(scope: str) -> str:
    """``read:users`` → ``read:*``."""
    return scope.partition(":")[0] + ":*"


def grants(held: Iterable[str], required: str) -> bool:
    """Whether holding ``held`` covers ``required``."""
    wildcard = wildcard_of(required)
    for scope in held:
        if scope == required or scope == wildcard:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Scope:
    name: str
    description: str
    roles: frozenset[str] = frozenset()  # empty: any signed-in identity may hold it


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The scopes tokens may carry, in the order the token page lists them."""

    scopes: tuple[Scope, ...]
    by_name: Mapping[str, Scope] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Looked up on every scope check of a PAT: built once.
        object.__setattr__(self, "by_name", {scope.name: scope for scope in self.scopes})

    def knows(self, scope: str) -> bool:
        return scope in self.by_name

    def may_hold(self, roles: Iterable[str], scope: str) -> bool:
        """Whether an identity with ``roles`` may hold ``scope`` in a PAT: by the scope's own
        entry, else by its wildcard's; a scope the catalogue does not know is held by nobody."""
        entries = self.by_name
        entry = entries.get(scope) or entries.get(wildcard_of(scope))
        if entry is None:
            return False
        return not entry.roles or bool(entry.roles.intersection(roles))

    def offered_to(self, roles: Iterable[str]) -> tuple[Scope, ...]:
        """The scopes the token page offers an identity with ``roles``."""
        held = tuple(roles)
        return tuple(s for s in self.scopes if self.may_hold(held, s.name))


def pat_grants(
    catalogue: Catalogue, held: Iterable[str], roles: Iterable[str], required: str
) -> bool:
    """A PAT covers ``required`` when its scopes do *and* its owner may hold ``required``."""
    return grants(held, required) and catalogue.may_hold(roles, required)


def effective_pat_scopes(
    catalogue: Catalogue, held: Iterable[str], roles: Iterable[str]
) -> tuple[str, ...]:
    """The PAT's scopes its owner's roles still allow (what the upstream app is told)."""
    owner_roles = tuple(roles)
    return tuple(scope for scope in held if catalogue.may_hold(owner_roles, scope))


def normalise(scopes: Iterable[str]) -> tuple[str, ...]:
    """Sorted, de-duplicated, trimmed."""
    return tuple(sorted({s.strip() for s in scopes if s.strip()}))


DEFAULT_CATALOGUE = Catalogue(
    (
        Scope("read:users", "Read user data"),
        Scope("write:users", "Create and update users"),
        Scope("delete:users", "Delete users", frozenset({"admin"})),
        Scope("read:resources", "Read app resources"),
        Scope("write:resources", "Create and update resources"),
        Scope("admin:billing", "Manage billing", frozenset({"admin"})),
        Scope("admin:team", "Manage team members", frozenset({"admin"})),
        Scope("read:*", "Read anything"),
        Scope("admin:*", "Full admin access", frozenset({"admin"})),
    )
)
