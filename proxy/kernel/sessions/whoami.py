"""Asking Kratos who a credential belongs to (``/sessions/whoami``), and what the answer means.

Only the one credential being checked is sent — never the caller's other cookies or headers —
so Kratos sees the same question whichever proxy asked, and the cache key (a hash of that
credential) describes the question exactly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp import ClientSession, ClientTimeout, DummyCookieJar, TCPConnector
from yarl import URL

from proxy.kernel.digests import sha256_hex
from proxy.kernel.sessions.metrics import WHOAMI, WHOAMI_LATENCY

# The logger name operators already filter on (these look-ups began as the decisions').
log = logging.getLogger("kratos_hooks.decisions")

CredentialKind = Literal["cookie", "token", "api_token"]  # api_token: ours, not Kratos'
WhoamiVerdict = Literal["valid", "invalid", "aal2_required", "error"]


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time as Kratos writes them (``expires_at``), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(slots=True)  # made per decision: a plain slots class is three times cheaper
class Credential:
    kind: CredentialKind
    value: str
    cookie_name: str = ""
    _key: str = field(default="", repr=False, compare=False)

    @property
    def key(self) -> str:
        """The cache key (a hash of the credential, never the credential), hashed once."""
        if not self._key:
            self._key = credential_key(self.value)
        return self._key


def credential_key(value: str) -> str:
    """The cache key of a session token or cookie value."""
    return sha256_hex(value.encode())


@dataclass(frozen=True, slots=True)
class WhoamiResult:
    verdict: WhoamiVerdict
    session: dict[str, Any] | None = None
    # Derived values (the identity headers) computed once per cached answer, not per decision.
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def cacheable(self) -> bool:
        # A step-up answer must never be remembered: once the user completes the second
        # factor the very same credential is aal2, and a cached "aal1" would loop them.
        return self.verdict in {"valid", "invalid"}


def classify(status: int, body: bytes) -> WhoamiResult:
    """Kratos' answer as a verdict (pure)."""
    if status == 200:
        try:
            session = orjson.loads(body)
        except orjson.JSONDecodeError:
            return WhoamiResult("error")
        if not isinstance(session, dict) or session.get("active") is False:
            return WhoamiResult("invalid")
        return WhoamiResult("valid", session)
    if status == 403:
        try:
            error = orjson.loads(body).get("error", {})
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        if isinstance(error, dict) and error.get("id") == "session_aal2_required":
            return WhoamiResult("aal2_required")
        return WhoamiResult("invalid")
    if status in {401, 404, 410}:
        return WhoamiResult("invalid")
    return WhoamiResult("error")


class WhoamiClient:
    """Kratos' ``/sessions/whoami`` over a pool of its own (decisions never queue behind other
    traffic), made on first use — inside the running loop, whichever listener asks first —
    and closed by ``close``."""

    def __init__(self, public_url: str, timeout: float, *, keepalive: float = 30.0) -> None:
        self._session: ClientSession | None = None
        self._keepalive = keepalive
        self._url = URL(public_url.rstrip("/") + "/sessions/whoami")
        self._timeout = ClientTimeout(total=timeout)

    @property
    def http(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(
                connector=TCPConnector(limit=100, keepalive_timeout=self._keepalive),
                cookie_jar=DummyCookieJar(),
                timeout=self._timeout,
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def ask(self, credential: Credential) -> WhoamiResult:
        if credential.kind == "cookie":
            headers = {"Cookie": f"{credential.cookie_name}={credential.value}"}
        else:
            headers = {"X-Session-Token": credential.value}
        headers["Accept"] = "application/json"
        started = time.perf_counter()
        try:
            # Awaited and released by hand rather than ``async with``: a compiled coroutine
            # (``proxy.native``) awaits nothing while an exception propagates.
            response = await self.http.get(
                self._url, headers=headers, timeout=self._timeout, allow_redirects=False
            )
            try:
                body = await response.read()
            finally:
                response.release()
            result = classify(response.status, body)
            if result.verdict == "error":
                log.warning("kratos whoami failed", extra={"http_status": response.status})
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("kratos whoami failed", extra={"error": type(exc).__name__})
            result = WhoamiResult("error")
        WHOAMI_LATENCY.observe(time.perf_counter() - started)
        WHOAMI.labels(result.verdict).inc()
        return result
