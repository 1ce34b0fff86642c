"""Everything the stand-in knows: config, identities, sessions, flows, and a record of calls."""

from __future__ import annotations

import collections
import copy
import hashlib
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from multidict import CIMultiDict

from .gostd import normalize_identifier
from .timefmt import rfc3339

AppName = Literal["public", "admin"]
FlowType = Literal["browser", "api"]
LoginStyle = Literal["unified", "identifier_first"]
# Which form a flow shows: password (unified), identifier-first step 1,
# identifier-first step 2, or the second factor.
FlowStage = Literal["password", "identifier", "identifier_password", "totp"]
# The self-service flows besides login the stand-in knows.
FlowKind = Literal["registration", "recovery", "verification"]

_ALNUM = string.ascii_letters + string.digits


def _utcnow() -> datetime:
    return datetime.now(UTC)


def random_alnum(length: int = 32) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes
    app: AppName

    @property
    def path(self) -> str:
        return self.path_qs.split("?", 1)[0]


@dataclass(slots=True)
class PasswordCredential:
    identifiers: list[str]
    password: str
    totp: bool
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class AuthMethod:
    method: str
    aal: str
    completed_at: datetime


@dataclass(slots=True)
class SessionRecord:
    id: str
    token: str
    cookie_value: str
    logout_token: str
    identity_id: str
    aal: str
    issued_at: datetime
    authenticated_at: datetime
    expires_at: datetime
    methods: list[AuthMethod]
    devices: list[dict[str, str]] = field(default_factory=list)
    active: bool = True


@dataclass(slots=True)
class LoginFlow:
    id: str
    type: FlowType
    stage: FlowStage
    issued_at: datetime
    expires_at: datetime
    request_url: str
    csrf_token: str
    return_to: str | None = None
    refresh: bool = False
    requested_aal: str = "aal1"
    active: str | None = None
    identifier: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    node_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    transient_payload: dict[str, Any] | None = None


@dataclass(slots=True)
class SelfServiceFlow:
    """A registration, recovery or verification flow (``state`` as Kratos names it)."""

    kind: FlowKind
    id: str
    type: FlowType
    issued_at: datetime
    expires_at: datetime
    request_url: str
    csrf_token: str
    return_to: str | None = None
    state: str = "choose_method"
    messages: list[dict[str, Any]] = field(default_factory=list)
    node_messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def identifiers_from_traits(traits: object) -> list[str]:
    """The default identity schema marks ``traits.email`` as the password identifier."""
    if isinstance(traits, dict) and isinstance(traits.get("email"), str):
        return [normalize_identifier(traits["email"])]
    return []


@dataclass
class StandinState:
    public_base_url: str = "http://127.0.0.1:4433"
    login_ui_url: str = "http://127.0.0.1:3000/login"
    registration_ui_url: str = "http://127.0.0.1:3000/registration"
    recovery_ui_url: str = "http://127.0.0.1:3000/recovery"
    verification_ui_url: str = "http://127.0.0.1:3000/verification"
    error_ui_url: str = "http://127.0.0.1:3000/error"
    default_return_to: str = "http://127.0.0.1:3000/"
    session_cookie_name: str = "ory_kratos_session"
    session_lifespan: timedelta = timedelta(hours=24)
    flow_lifespan: timedelta = timedelta(hours=1)
    # Slept for every password check, known identifier or not, so timing reveals nothing.
    hash_delay: float = 0.005
    # session.whoami.required_aal: aal1 sessions get 403 session_aal2_required.
    require_aal2: bool = False
    # selfservice.flows.login.style; identifier_first posts only work in that style.
    login_style: LoginStyle = "unified"
    # The one code the stand-in's TOTP accepts.
    totp_code: str = "123456"
    now: Callable[[], datetime] = _utcnow

    identities: dict[str, dict[str, Any]] = field(default_factory=dict)
    passwords: dict[str, PasswordCredential] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    flows: dict[str, LoginFlow] = field(default_factory=dict)
    other_flows: dict[str, SelfServiceFlow] = field(default_factory=dict)
    flow_errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    calls: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    # Submissions that reached the password comparison, by the identity the identifier
    # resolved to ("" for none): what an attacker of that account got to try.
    password_checks: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: list[RecordedRequest] = field(default_factory=list)

    # --- call recorder -------------------------------------------------
    def count(self, method: str, path: str) -> int:
        return self.calls[(method.upper(), path)]

    def reset_calls(self) -> None:
        self.calls.clear()
        self.requests.clear()
        self.password_checks.clear()

    def record(self, entry: RecordedRequest) -> None:
        self.calls[(entry.method, entry.path)] += 1
        self.requests.append(entry)

    # --- derived config ------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.public_base_url.rstrip("/")

    def ui_url_of(self, kind: FlowKind) -> str:
        urls = {
            "registration": self.registration_ui_url,
            "recovery": self.recovery_ui_url,
            "verification": self.verification_ui_url,
        }
        return urls[kind]

    @property
    def csrf_cookie_name(self) -> str:
        digest = hashlib.sha256(self.public_base_url.encode()).hexdigest()
        return f"csrf_token_{digest}"

    # --- identities ----------------------------------------------------
    def add_identity(
        self,
        email: str,
        password: str,
        *,
        traits: dict[str, Any] | None = None,
        metadata_public: dict[str, Any] | None = None,
        state: str = "active",
        totp: bool = False,
    ) -> dict[str, Any]:
        now = rfc3339(self.now())
        identity_id = str(uuid.uuid4())
        all_traits = {"email": email, **(traits or {})}
        self.identities[identity_id] = {
            "id": identity_id,
            "schema_id": "default",
            "schema_url": f"{self.base_url}/schemas/ZGVmYXVsdA",
            "state": state,
            "state_changed_at": now,
            "traits": all_traits,
            "verifiable_addresses": [_address(email, now, verifiable=True)],
            "recovery_addresses": [_address(email, now, verifiable=False)],
            "metadata_public": copy.deepcopy(metadata_public),
            "metadata_admin": None,
            "created_at": now,
            "updated_at": now,
            "organization_id": None,
        }
        self.passwords[identity_id] = PasswordCredential(
            identifiers=identifiers_from_traits(all_traits),
            password=password,
            totp=totp,
            created_at=self.now(),
            updated_at=self.now(),
        )
        return copy.deepcopy(self.identities[identity_id])

    def set_identity_state(self, identity_id: str, state: str) -> None:
        identity = self.identities[identity_id]
        if identity["state"] != state:
            identity["state"] = state
            identity["state_changed_at"] = rfc3339(self.now())
            identity["updated_at"] = identity["state_changed_at"]

    def find_by_identifier(self, identifier: str) -> str | None:
        wanted = normalize_identifier(identifier)
        for identity_id, credential in self.passwords.items():
            if wanted in credential.identifiers:
                return identity_id
        return None

    def resync_identifiers(self, identity_id: str) -> None:
        credential = self.passwords.get(identity_id)
        if credential is not None:
            credential.identifiers = identifiers_from_traits(self.identities[identity_id]["traits"])

    def delete_identity(self, identity_id: str) -> None:
        del self.identities[identity_id]
        self.passwords.pop(identity_id, None)
        for session_id in [s.id for s in self.sessions.values() if s.identity_id == identity_id]:
            del self.sessions[session_id]

    # --- sessions ------------------------------------------------------
    def create_session(
        self,
        identity_id: str,
        *,
        aal: str = "aal1",
        device: dict[str, str] | None = None,
    ) -> tuple[str, str]:
        """Return (session token, cookie value); both resolve to the new session."""
        now = self.now()
        methods = [AuthMethod("password", "aal1", now)]
        if aal == "aal2":
            methods.append(AuthMethod("totp", "aal2", now))
        session = SessionRecord(
            id=str(uuid.uuid4()),
            token=f"ory_st_{random_alnum()}",
            cookie_value=secrets.token_urlsafe(48),
            logout_token=f"ory_lo_{random_alnum()}",
            identity_id=identity_id,
            aal=aal,
            issued_at=now,
            authenticated_at=now,
            expires_at=now + self.session_lifespan,
            methods=methods,
            devices=[{"id": str(uuid.uuid4()), **(device or {})}],
        )
        self.sessions[session.id] = session
        return session.token, session.cookie_value

    def session_by_token(self, token: str) -> SessionRecord | None:
        return next((s for s in self.sessions.values() if s.token == token), None)

    def session_by_cookie(self, value: str) -> SessionRecord | None:
        return next((s for s in self.sessions.values() if s.cookie_value == value), None)

    def is_usable(self, session: SessionRecord) -> bool:
        identity = self.identities.get(session.identity_id)
        return (
            session.active
            and session.expires_at > self.now()
            and identity is not None
            and identity["state"] == "active"
        )

    def revoke_session(self, session: SessionRecord) -> None:
        session.active = False

    # --- flows ---------------------------------------------------------
    def expire_flow(self, flow_id: str) -> None:
        self.flows[flow_id].expires_at = self.now() - timedelta(seconds=1)


def _address(email: str, now: str, *, verifiable: bool) -> dict[str, Any]:
    address: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "value": email,
        "via": "email",
        "created_at": now,
        "updated_at": now,
    }
    if verifiable:
        address.update(verified=True, verified_at=now, status="completed")
    return address
