"""Authenticators: who is asking, tried in the rule's order.

An authenticator that finds **no** credential of its kind passes to the next one; one that
finds a credential that is rejected (by Kratos, or by the token store) stops the chain (the
caller sent something wrong — trying an anonymous fallback would hide that). The interface is
credential extraction (pure) plus resolution (from memory without a coroutine when it can,
else async). ``token`` asks the credentials feature through the kernel's ``TokenVerifier``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from multidict import CIMultiDictProxy

from handlers.decisions.request import OriginalRequest
from handlers.decisions.rules import AuthenticatorName
from handlers.decisions.subject import Subject
from proxy.kernel.cookies import cookie_value
from proxy.kernel.sessions.cache import SessionCache
from proxy.kernel.sessions.whoami import Credential, WhoamiResult
from proxy.kernel.tokens import TokenRefusal, TokenVerdict, TokenVerifier

AuthOutcome = Literal["subject", "none", "invalid", "step_up", "error", "token_refused"]
TOKEN_PREFIX = "ory_st_"
UNAVAILABLE = TokenRefusal("unavailable")


@dataclass(slots=True)  # made per decision: a plain slots class is three times cheaper
class AuthResult:
    outcome: AuthOutcome
    subject: Subject | None = None
    credential: Credential | None = None
    authenticator: str = ""
    refusal: TokenRefusal | None = None  # why the token store refused (``token_refused``)


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


def api_token(headers: Mapping[str, str], header: str) -> str | None:
    """A token of ours: the configured header (``X-API-Key``), else any bearer token that is
    not a Kratos session token (whether it is well formed is the verifier's to say)."""
    value = headers.get(header, "").strip()
    if value:
        return value
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value and not value.startswith(TOKEN_PREFIX):
        return value
    return None


class Authenticator(Protocol):
    name: str

    def credential(self, headers: CIMultiDictProxy[str]) -> Credential | None: ...

    def known(self, credential: Credential, original: OriginalRequest) -> AuthResult | None:
        """The answer already in memory, without a coroutine; None: ``resolve`` must ask."""
        ...

    async def resolve(self, credential: Credential, original: OriginalRequest) -> AuthResult: ...


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

    def known(self, credential: Credential, original: OriginalRequest) -> AuthResult:
        return AuthResult("subject", Subject(), None, self.name)

    async def resolve(self, credential: Credential, original: OriginalRequest) -> AuthResult:
        return self.known(credential, original)


class _KratosSession:
    """What the cookie and the token authenticators share: Kratos' answer about the
    credential, from the session cache when it knows it."""

    name: str

    def __init__(self, cache: SessionCache, roles_path: str) -> None:
        self._cache = cache
        self._roles_path = roles_path

    def known(self, credential: Credential, original: OriginalRequest) -> AuthResult | None:
        if not credential.value.isascii():
            # Kratos issues ASCII tokens and cookie values only, so this is none of them —
            # and bytes that are not UTF-8 could neither be hashed nor sent on (they were
            # a 500).
            return AuthResult("invalid", None, credential, self.name)
        result = self._cache.cached(credential)
        if result is None:
            return None
        return _from_whoami(result, credential, self.name, self._roles_path)

    async def resolve(self, credential: Credential, original: OriginalRequest) -> AuthResult:
        answer = self.known(credential, original)
        if answer is not None:
            return answer
        result = await self._cache.lookup(credential)
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


class Token:
    """A personal access token, API key or service token, checked by the credentials feature
    (``None`` when tokens are switched off: every token rule then fails closed, 503)."""

    name = "token"

    def __init__(self, verifier: TokenVerifier | None, header: str) -> None:
        self.verifier = verifier
        self._header = header

    def credential(self, headers: CIMultiDictProxy[str]) -> Credential | None:
        value = api_token(headers, self._header)
        return Credential("api_token", value) if value else None

    def _result(self, verdict: TokenVerdict, credential: Credential) -> AuthResult:
        if isinstance(verdict, TokenRefusal):
            return AuthResult("token_refused", None, credential, self.name, verdict)
        return AuthResult("subject", Subject.of_token(verdict), credential, self.name)

    def known(self, credential: Credential, original: OriginalRequest) -> AuthResult | None:
        if self.verifier is None:
            return AuthResult("token_refused", None, credential, self.name, UNAVAILABLE)
        verdict = self.verifier.known(credential.value, lambda: original.client_ip)
        return None if verdict is None else self._result(verdict, credential)

    async def resolve(self, credential: Credential, original: OriginalRequest) -> AuthResult:
        if self.verifier is None:
            return AuthResult("token_refused", None, credential, self.name, UNAVAILABLE)
        verdict = await self.verifier.verify(credential.value, original.client_ip)
        return self._result(verdict, credential)


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


async def authenticate(found: Found | None, original: OriginalRequest) -> AuthResult:
    """The chain's answer: the authenticator that found a credential decides."""
    if found is None:
        return AuthResult("none")
    authenticator, credential = found
    return await authenticator.resolve(credential, original)


def authenticate_known(found: Found | None, original: OriginalRequest) -> AuthResult | None:
    """``authenticate`` without a coroutine, when memory already knows the answer (a cached
    session or token: the common case); None when the deciding authenticator must ask."""
    if found is None:
        return AuthResult("none")
    authenticator, credential = found
    return authenticator.known(credential, original)
