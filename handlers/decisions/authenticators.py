"""Authenticators: who is asking, tried in the rule's order.

An authenticator that finds **no** credential of its kind passes to the next one; one that
finds a credential Kratos rejects stops the chain (the caller sent something wrong — trying
an anonymous fallback would hide that). The interface is credential extraction (pure) plus
resolution (async), so a personal-access-token / API-key authenticator slots in beside these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from multidict import CIMultiDictProxy

from handlers.decisions.rules import AuthenticatorName
from handlers.decisions.session_cache import SessionCache
from handlers.decisions.subject import Subject
from handlers.decisions.whoami import Credential, WhoamiResult
from proxy.kernel.cookies import cookie_value

AuthOutcome = Literal["subject", "none", "invalid", "step_up", "error"]
TOKEN_PREFIX = "ory_st_"


@dataclass(slots=True)  # made per decision: a plain slots class is three times cheaper
class AuthResult:
    outcome: AuthOutcome
    subject: Subject | None = None
    credential: Credential | None = None
    authenticator: str = ""


def session_token(headers: Mapping[str, str]) -> str | None:
    """``X-Session-Token``, else an ``Authorization: Bearer ory_st_…`` (other bearer tokens
    belong to other authenticators)."""
    token = headers.get("X-Session-Token", "").strip()
    if token:
        return token
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value.startswith(TOKEN_PREFIX):
        return value
    return None


class Authenticator(Protocol):
    name: str

    def credential(self, headers: CIMultiDictProxy[str]) -> Credential | None: ...

    def known(self, credential: Credential) -> AuthResult | None:
        """The answer already in memory, without a coroutine; None: ``resolve`` must ask."""
        ...

    async def resolve(self, credential: Credential) -> AuthResult: ...


def _from_whoami(
    result: WhoamiResult, credential: Credential, name: str, roles_path: str
) -> AuthResult:
    if result.verdict == "valid" and result.session is not None:
        # One Subject per cached answer (and roles path), not one per decision.
        key = "subject:" + roles_path
        subject = result.memo.get(key)
        if subject is None:
            subject = result.memo[key] = Subject(result.session, roles_path, result.memo)
        return AuthResult("subject", subject, credential, name)
    if result.verdict == "aal2_required":
        return AuthResult("step_up", None, credential, name)
    if result.verdict == "invalid":
        return AuthResult("invalid", None, credential, name)
    return AuthResult("error", None, credential, name)


class Anonymous:
    name = "anonymous"

    def credential(self, headers: CIMultiDictProxy[str]) -> Credential | None:
        return Credential("token", "")  # always present: the anonymous subject

    def known(self, credential: Credential) -> AuthResult:
        return AuthResult("subject", Subject(), None, self.name)

    async def resolve(self, credential: Credential) -> AuthResult:
        return self.known(credential)


class _KratosSession:
    """What the cookie and the token authenticators share: Kratos' answer about the
    credential, from the session cache when it knows it."""

    name: str

    def __init__(self, cache: SessionCache, roles_path: str) -> None:
        self._cache = cache
        self._roles_path = roles_path

    def known(self, credential: Credential) -> AuthResult | None:
        result = self._cache.cached(credential)
        if result is None:
            return None
        return _from_whoami(result, credential, self.name, self._roles_path)

    async def resolve(self, credential: Credential) -> AuthResult:
        result = self._cache.cached(credential) or await self._cache.lookup(credential)
        return _from_whoami(result, credential, self.name, self._roles_path)


class SessionCookie(_KratosSession):
    name = "session_cookie"

    def __init__(self, cache: SessionCache, cookie_name: str, roles_path: str) -> None:
        super().__init__(cache, roles_path)
        self._cookie_name = cookie_name

    def credential(self, headers: CIMultiDictProxy[str]) -> Credential | None:
        value = cookie_value(headers.getall("Cookie", ()), self._cookie_name)
        return Credential("cookie", value, self._cookie_name) if value else None


class SessionToken(_KratosSession):
    name = "session_token"

    def credential(self, headers: CIMultiDictProxy[str]) -> Credential | None:
        value = session_token(headers)
        return Credential("token", value) if value else None


Found = tuple[Authenticator, Credential]


def find_credential(
    chain: Sequence[AuthenticatorName],
    registry: Mapping[str, Authenticator],
    headers: CIMultiDictProxy[str],
) -> Found | None:
    """The first authenticator in ``chain`` that finds its credential, and the credential —
    read from the headers once per decision; None when none finds one."""
    for name in chain:
        authenticator = registry[name]
        credential = authenticator.credential(headers)
        if credential is not None:
            return authenticator, credential
    return None


async def authenticate(found: Found | None) -> AuthResult:
    """The chain's answer: the authenticator that found a credential decides."""
    if found is None:
        return AuthResult("none")
    authenticator, credential = found
    return await authenticator.resolve(credential)


def authenticate_known(found: Found | None) -> AuthResult | None:
    """``authenticate`` without a coroutine, when memory already knows the answer (a cached
    session: the common case); None when the deciding authenticator must ask."""
    if found is None:
        return AuthResult("none")
    authenticator, credential = found
    return authenticator.known(credential)
