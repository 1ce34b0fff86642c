"""Pure builders for the JSON bodies Kratos sends: flows, sessions, identities, UI texts."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from .state import LoginFlow, PasswordCredential, SelfServiceFlow, SessionRecord, StandinState
from .timefmt import rfc3339

INVALID_CREDENTIALS_TEXT = (
    "The provided credentials are invalid, check for spelling mistakes in your password "
    "or username, email address, or phone number."
)


# --- UI texts -----------------------------------------------------------------
def invalid_credentials() -> dict[str, Any]:
    return {"id": 4000006, "text": INVALID_CREDENTIALS_TEXT, "type": "error"}


def missing_property(name: str) -> dict[str, Any]:
    return {
        "id": 4000002,
        "text": f"Property {name} is missing.",
        "type": "error",
        "context": {"property": name},
    }


def no_strategy() -> dict[str, Any]:
    return {
        "id": 4010002,
        "text": (
            "Could not find a strategy to log you in with. Did you fill out the form correctly?"
        ),
        "type": "error",
    }


def flow_expired(minutes: float, expired_at: datetime) -> dict[str, Any]:
    return {
        "id": 4010001,
        "text": f"The login flow expired {minutes:.2f} minutes ago, please try again.",
        "type": "error",
        "context": {
            "expired_at": rfc3339(expired_at),
            "expired_at_unix": int(expired_at.timestamp()),
        },
    }


def invalid_totp() -> dict[str, Any]:
    return {
        "id": 4000008,
        "text": "The provided authentication code is invalid, please try again.",
        "type": "error",
    }


def _label(text_id: int, text: str) -> dict[str, Any]:
    return {"label": {"id": text_id, "text": text, "type": "info"}}


# --- login flow -----------------------------------------------------------------
def _input(
    name: str,
    group: str,
    kind: str,
    *,
    value: str | None = None,
    required: bool = False,
    autocomplete: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {"name": name, "type": kind}
    if value is not None:
        attributes["value"] = value
    if required:
        attributes["required"] = True
    if autocomplete:
        attributes["autocomplete"] = autocomplete
    attributes["disabled"] = False
    attributes["node_type"] = "input"
    return {
        "type": "input",
        "group": group,
        "attributes": attributes,
        "messages": [],
        "meta": meta or {},
    }


def _stage_nodes(flow: LoginFlow) -> list[dict[str, Any]]:
    identifier_label = _label(1070004, "ID")
    password = _input(
        "password",
        "password",
        "password",
        required=True,
        autocomplete="current-password",
        meta=_label(1070001, "Password"),
    )
    sign_in = _input(
        "method", "password", "submit", value="password", meta=_label(1010001, "Sign in")
    )
    if flow.stage == "password":
        identifier = _input(
            "identifier",
            "default",
            "text",
            value=flow.identifier,
            required=True,
            autocomplete="username",
            meta=identifier_label,
        )
        return [identifier, password, sign_in]
    if flow.stage == "identifier":
        identifier = _input(
            "identifier",
            "identifier_first",
            "text",
            value=flow.identifier,
            required=True,
            autocomplete="username webauthn",
            meta=identifier_label,
        )
        cont = _input(
            "method",
            "identifier_first",
            "submit",
            value="identifier_first",
            meta=_label(1070009, "Continue"),
        )
        return [identifier, cont]
    if flow.stage == "identifier_password":
        identifier = _input(
            "identifier",
            "identifier_first",
            "hidden",
            value=flow.identifier,
            required=True,
            autocomplete="username webauthn",
            meta=identifier_label,
        )
        return [identifier, password, sign_in]
    code = _input(
        "totp_code",
        "totp",
        "text",
        required=True,
        autocomplete="one-time-code",
        meta=_label(1010006, "Authentication code"),
    )
    use = _input(
        "method", "totp", "submit", value="totp", meta=_label(1010009, "Use Authenticator")
    )
    return [code, use]


def _flow_ui(
    flow: LoginFlow | SelfServiceFlow, action: str, nodes: list[dict[str, Any]]
) -> dict[str, Any]:
    """A flow's ``ui``: the CSRF node for browsers, then ``nodes``, with the flow's messages."""
    if flow.type == "browser":
        csrf = _input("csrf_token", "default", "hidden", value=flow.csrf_token, required=True)
        nodes = [csrf, *nodes]
    for node in nodes:
        node["messages"] = copy.deepcopy(flow.node_messages.get(node["attributes"]["name"], []))
    ui: dict[str, Any] = {"action": action, "method": "POST", "nodes": nodes}
    if flow.messages:
        ui["messages"] = copy.deepcopy(flow.messages)
    return ui


def login_flow(flow: LoginFlow, state: StandinState) -> dict[str, Any]:
    action = f"{state.base_url}/self-service/login?flow={flow.id}"
    ui = _flow_ui(flow, action, _stage_nodes(flow))
    body: dict[str, Any] = {
        "id": flow.id,
        "organization_id": None,
        "type": flow.type,
        "expires_at": rfc3339(flow.expires_at),
        "issued_at": rfc3339(flow.issued_at),
        "request_url": flow.request_url,
    }
    if flow.return_to:
        body["return_to"] = flow.return_to
    if flow.active:
        body["active"] = flow.active
    body |= {
        "ui": ui,
        "created_at": rfc3339(flow.issued_at),
        "updated_at": rfc3339(flow.issued_at),
        "refresh": flow.refresh,
        "requested_aal": flow.requested_aal,
        "state": "choose_method",
    }
    if flow.transient_payload is not None:
        body["transient_payload"] = copy.deepcopy(flow.transient_payload)
    return body


# --- registration, recovery and verification flows ----------------------------------
CODE_SENT = {
    "recovery": 1060003,
    "verification": 1080003,
}


def code_sent(kind: str) -> dict[str, Any]:
    return {
        "id": CODE_SENT[kind],
        "text": (
            f"An email containing a {kind} code has been sent to the email address you "
            "provided. If you have not received an email, check the spelling of the address "
            "and make sure to use the address you registered with."
        ),
        "type": "info",
    }


def _kind_nodes(flow: SelfServiceFlow) -> list[dict[str, Any]]:
    if flow.kind == "registration":
        return [
            _input(
                "traits.email",
                "default",
                "email",
                required=True,
                autocomplete="email",
                meta=_label(1070002, "E-Mail"),
            ),
            _input(
                "password",
                "password",
                "password",
                required=True,
                autocomplete="new-password",
                meta=_label(1070001, "Password"),
            ),
            _input(
                "method", "password", "submit", value="password", meta=_label(1040001, "Sign up")
            ),
        ]
    email = _input(
        "email", "code", "email", required=True, autocomplete="email", meta=_label(1070007, "Email")
    )
    submit = _input("method", "code", "submit", value="code", meta=_label(1070005, "Submit"))
    return [email, submit]


def self_service_flow(flow: SelfServiceFlow, state: StandinState) -> dict[str, Any]:
    action = f"{state.base_url}/self-service/{flow.kind}?flow={flow.id}"
    ui = _flow_ui(flow, action, _kind_nodes(flow))
    body: dict[str, Any] = {"id": flow.id}
    if flow.kind == "registration":
        body["organization_id"] = None
    body |= {
        "type": flow.type,
        "expires_at": rfc3339(flow.expires_at),
        "issued_at": rfc3339(flow.issued_at),
        "request_url": flow.request_url,
    }
    if flow.return_to:
        body["return_to"] = flow.return_to
    if flow.state != "choose_method":
        body["active"] = "code"
    return body | {"ui": ui, "state": flow.state}


# --- identities and sessions ------------------------------------------------------
def _credentials(credential: PasswordCredential) -> dict[str, Any]:
    out: dict[str, Any] = {
        "password": {
            "type": "password",
            "identifiers": list(credential.identifiers),
            "version": 0,
            "created_at": rfc3339(credential.created_at),
            "updated_at": rfc3339(credential.updated_at),
        }
    }
    if credential.totp:
        out["totp"] = {
            "type": "totp",
            "identifiers": [],
            "version": 0,
            "created_at": rfc3339(credential.created_at),
            "updated_at": rfc3339(credential.updated_at),
        }
    return out


def public_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """What sessions embed: no credentials, no metadata_admin."""
    out = copy.deepcopy(identity)
    out.pop("metadata_admin", None)
    out.pop("credentials", None)
    return out


def admin_identity(
    identity: dict[str, Any],
    credential: PasswordCredential | None,
    *,
    with_credentials: bool = True,
) -> dict[str, Any]:
    out = copy.deepcopy(identity)
    if with_credentials and credential is not None:
        out["credentials"] = _credentials(credential)
    return out


def session(record: SessionRecord, identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record.id,
        "active": record.active,
        "expires_at": rfc3339(record.expires_at),
        "authenticated_at": rfc3339(record.authenticated_at),
        "authenticator_assurance_level": record.aal,
        "authentication_methods": [
            {"method": m.method, "aal": m.aal, "completed_at": rfc3339(m.completed_at)}
            for m in record.methods
        ],
        "issued_at": rfc3339(record.issued_at),
        "identity": public_identity(identity),
        "devices": copy.deepcopy(record.devices),
    }


def health_ok() -> dict[str, Any]:
    return {"status": "ok"}
