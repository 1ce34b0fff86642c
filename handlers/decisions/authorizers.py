"""Authorizers that need nothing but the subject: pure functions.

``remote`` asks a webhook and lives in ``remote.py``; everything here is decided in memory.
A subject-dependent authorizer (roles, aal) facing the anonymous subject answers
"unauthenticated" — signing in might help — where a signed-in subject lacking a role gets
"forbidden", which signing in again would not change.
"""

from __future__ import annotations

from handlers.decisions.deny import Denial
from handlers.decisions.rules import Authorizer
from handlers.decisions.subject import Subject, meets_aal

SIGN_IN = "This resource requires a signed-in session."


def authorize(authorizer: Authorizer, subject: Subject) -> Denial | None:
    """None when ``subject`` may pass; else why not. Not for ``remote``."""
    kind = authorizer.kind
    if kind == "allow":
        return None
    if kind == "deny":
        return Denial("forbidden", "Access to this resource is denied.")
    if subject.anonymous:
        return Denial("unauthenticated", SIGN_IN)
    if kind == "roles":
        held = set(subject.roles)
        needed = authorizer.roles
        ok = needed <= held if authorizer.require_all else bool(needed & held)
        return None if ok else Denial("forbidden", "The session lacks a required role.")
    if kind == "aal":
        if meets_aal(subject.aal, authorizer.aal):
            return None
        return Denial("step_up", "This resource requires a second authentication factor.")
    raise ValueError(f"authorizer {kind!r} is not a local one")
