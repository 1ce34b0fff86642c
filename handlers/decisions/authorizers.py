"""Authorizers that need nothing but the subject: pure functions.

``remote`` asks a webhook and lives in ``remote.py``; everything here is decided in memory.
A subject-dependent authorizer (roles, aal, scopes) facing the anonymous subject answers
"unauthenticated" — signing in might help — where a signed-in subject lacking a role gets
"forbidden", which signing in again would not change.

``scopes`` is for tokens: a token lacking a required scope gets ``insufficient_scope`` (403,
RFC 6750, the scopes named); a Kratos session has no scopes and is forbidden. ``roles`` sees a
PAT's owner's roles; ``aal`` refuses tokens (a token cannot step up).
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
    if kind == "scopes":
        return _scopes(authorizer, subject)
    if kind == "roles":
        held = set(subject.roles)
        needed = authorizer.roles
        ok = needed <= held if authorizer.require_all else bool(needed & held)
        return None if ok else Denial("forbidden", "The session lacks a required role.")
    if kind == "aal":
        if subject.token is not None:
            return Denial("forbidden", "This resource requires a signed-in session.")
        if meets_aal(subject.aal, authorizer.aal):
            return None
        return Denial("step_up", "This resource requires a second authentication factor.")
    raise ValueError(f"authorizer {kind!r} is not a local one")


def _scopes(authorizer: Authorizer, subject: Subject) -> Denial | None:
    token = subject.token
    needed = authorizer.scopes
    if token is None:
        return Denial("forbidden", "This resource requires a token with the right scopes.")
    if authorizer.require_all:
        missing = [scope for scope in needed if not token.grants(scope)]
        ok = not missing
    else:
        ok = any(token.grants(scope) for scope in needed)
    if ok:
        return None
    return Denial(
        "insufficient_scope", "The token lacks a scope this resource requires.", scope=needed
    )
