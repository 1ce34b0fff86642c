"""What the token page and its JSON API share: who is asking (their Kratos session, through
the kernel's session cache), CSRF, the owner's tokens, and how answers are written.

Every answer carries ``Cache-Control: no-store`` (a page may hold a secret; an answer about
one session must never be cached for another) and, for HTML, a strict CSP: scripts and styles
from this page only, no frames, forms posted here only.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

import orjson

from config.settings import Settings
from handlers.credentials.csrf import Csrf, csrf_key
from handlers.credentials.principal import owner_of
from handlers.credentials.service import Credentials
from handlers.credentials.store import TokenRecord
from proxy.kernel.errors import error_document
from proxy.kernel.hooked import Hooked, Reply
from proxy.kernel.sessions import Credential, Sessions

REVOKED_WINDOW = 30 * 86400.0
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
HTML_HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    *NO_STORE,
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
)
JSON_HEADERS = (("Content-Type", "application/json"), *NO_STORE)


@dataclass(frozen=True, slots=True)
class Who:
    """A signed-in caller, as Kratos' session says."""

    identity_id: str
    session_id: str
    email: str
    roles: tuple[str, ...]
    aal: str
    via: Literal["cookie", "token"]


Lookup = Who | Literal["signed_out", "unavailable"]


class PageContext:
    """The parts the page's handlers need, made once."""

    def __init__(self, settings: Settings, credentials: Credentials, sessions: Sessions) -> None:
        tokens = settings.tokens
        self.settings = settings
        self.config = tokens
        self.credentials = credentials
        self.sessions = sessions
        self.page_path = tokens.page_path
        self.public_prefix = settings.proxy.path_prefix
        self.base = self.public_prefix + tokens.page_path
        self.roles_path = settings.decisions.roles_path
        key, shared = csrf_key(tokens.csrf_secret, settings.backoff.secret)
        self.csrf = Csrf(key)
        self.csrf_shared = shared

    async def who(self, request: Hooked, *, tokens_too: bool = False) -> Lookup:
        """The caller's session: the Kratos cookie, or (JSON callers) ``X-Session-Token``."""
        cookie = request.cookie(self.sessions.cookie_name)
        credential: Credential | None = None
        if cookie:
            credential = Credential("cookie", cookie, self.sessions.cookie_name)
        elif tokens_too and request.headers.get("X-Session-Token", "").strip():
            credential = Credential("token", request.headers["X-Session-Token"].strip())
        if credential is None:
            return "signed_out"
        cache = self.sessions.cache
        result = cache.cached(credential) or await cache.lookup(credential)
        if result.verdict == "error":
            return "unavailable"
        if result.verdict != "valid" or result.session is None:
            return "signed_out"
        session = result.session
        identity = session.get("identity")
        identity = identity if isinstance(identity, dict) else {}
        traits = identity.get("traits")
        email = traits.get("email") if isinstance(traits, dict) else ""
        return Who(
            identity_id=str(identity.get("id", "")),
            session_id=str(session.get("id", "")),
            email=email if isinstance(email, str) else "",
            roles=owner_of(identity, self.roles_path).roles,
            aal=str(session.get("authenticator_assurance_level", "aal1")),
            via="cookie" if credential.kind == "cookie" else "token",
        )

    def needs_aal2(self, who: Who) -> bool:
        return self.config.require_aal2 and who.aal not in {"aal2", "aal3"}

    def offered(self, who: Who) -> tuple[str, ...]:
        return tuple(s.name for s in self.credentials.catalogue.offered_to(who.roles))

    async def mine(self, who: Who) -> tuple[list[TokenRecord], list[TokenRecord]]:
        """(active, revoked in the last 30 days) tokens of the caller, newest first."""
        records = await self.credentials.store.listing(
            kind="pat", owner=who.identity_id, revoked_since=time.time() - REVOKED_WINDOW
        )
        active = [self._with_pending_use(r) for r in records if r.revoked_at is None]
        revoked = sorted(
            (r for r in records if r.revoked_at is not None),
            key=lambda r: r.revoked_at or 0.0,
            reverse=True,
        )
        return active, revoked

    def _with_pending_use(self, record: TokenRecord) -> TokenRecord:
        use = self.credentials.last_used.latest(record.id)
        if use is None or (record.last_used_at or 0.0) >= use.at:
            return record
        return dataclasses.replace(record, last_used_at=use.at, last_used_ip=use.ip)

    async def own_token(self, who: Who, token_id: str) -> TokenRecord | None:
        """The caller's PAT ``token_id`` (None for anyone else's: it does not exist for them)."""
        record = await self.credentials.store.by_id(token_id)
        if record is None or record.kind != "pat" or record.owner != who.identity_id:
            return None
        return record

    def origin(self, request: Hooked) -> str:
        """The page's own origin, as the browser sees it (the ingress's forwarded scheme)."""
        scheme = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        host = request.headers.get("X-Forwarded-Host") or request.headers.get("Host") or ""
        host = "".join(c for c in host.split(",")[0].strip() if c.isalnum() or c in ".-:[]_")
        return f"{scheme if scheme in {'http', 'https'} else 'http'}://{host or 'localhost'}"

    def login_url(self, request: Hooked, *, aal2: bool = False) -> str:
        params = {"aal": "aal2", "refresh": "true"} if aal2 else {}
        params["return_to"] = self.origin(request) + self.base + "/"
        return f"{self.public_prefix}/self-service/login/browser?{urlencode(params)}"


def json_reply(status: int, document: Any, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply.own(status, orjson.dumps(document), JSON_HEADERS + extra)


def json_error(status: int, error_id: str, reason: str, request: Hooked) -> Reply:
    document = error_document(
        status, error_id=error_id, reason=reason, request_id=request.request_id
    )
    return json_reply(status, document)


def html_reply(status: int, html: str, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply.own(status, html.encode(), HTML_HEADERS + extra)
