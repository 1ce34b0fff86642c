"""The welcome event, exactly as the platform's notifications service consumes it.

Pure functions: the hook payload (the platform's Jsonnet output, or the whole
``ctx.identity``) becomes a ``Welcome`` and that becomes the NestJS envelope. A payload that
cannot make an event yields a reason string instead, because this hook must never block
Kratos.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

# A fixed namespace: the same identity and pattern always give the same message id, so a
# consumer can drop the duplicates a redelivery after a lost confirm may cause.
MESSAGE_NAMESPACE = uuid.UUID("1f0f6a0e-6a4e-5d38-9c1e-6b7261746f73")


@dataclass(frozen=True, slots=True)
class Welcome:
    identity_id: str
    email: str
    display_name: str
    first_name: str


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _obj(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _from_identity(identity: dict[str, Any]) -> dict[str, str]:
    traits = _obj(identity.get("traits"))
    name = _obj(traits.get("name"))
    first = _text(name.get("first")) or _text(traits.get("first_name"))
    last = _text(name.get("last")) or _text(traits.get("last_name"))
    display = _text(traits.get("display_name")) or " ".join(p for p in (first, last) if p)
    return {
        "identity_id": _text(identity.get("id")),
        "email": _text(traits.get("email")),
        "display_name": display,
        "first_name": first,
    }


def parse_welcome(payload: object) -> Welcome | str:
    """A ``Welcome``, or the reason (naming the field) why the payload makes none."""
    if not isinstance(payload, dict):
        return "body is not a JSON object"
    source: object = payload
    if isinstance(payload.get("identity"), dict):
        source = payload["identity"]
    if isinstance(source, dict) and "traits" in source:
        fields = _from_identity(source)
    else:
        fields = {key: _text(payload.get(key)) for key in Welcome.__slots__}
    for key in Welcome.__slots__:
        if not fields[key]:
            return f"{key} is missing or empty"
    if not _valid_uuid(fields["identity_id"]):
        return "identity_id is not a UUID"
    # One spelling per identity: the outbox key, the reservation and the message id are made
    # from it, so "ABC…" and "{abc…}" must not be two identities with two welcome events.
    fields["identity_id"] = str(uuid.UUID(fields["identity_id"]))
    return Welcome(**fields)


def event_key(pattern: str, identity_id: str) -> str:
    """The outbox / reservation key: one event per identity and pattern."""
    return f"event:{pattern}:{identity_id}"


def message_id(pattern: str, identity_id: str) -> str:
    return str(uuid.uuid5(MESSAGE_NAMESPACE, f"{pattern}:{identity_id}"))


def _user(identity_id: str, first: str, email: str, display: str, platform: str) -> dict[str, Any]:
    return {
        "id": identity_id,
        "firstName": first,
        "lastName": "",
        "email": email,
        "profile": {"displayName": display, "url": f"{platform}/user/{identity_id}"},
        "type": "user",
    }


def user_document(identity: dict[str, Any], platform_url: str) -> dict[str, Any]:
    """The platform's user object for a Kratos identity (what every event's recipients are)."""
    fields = _from_identity(identity)
    return _user(
        fields["identity_id"],
        fields["first_name"],
        fields["email"],
        fields["display_name"],
        platform_url.rstrip("/"),
    )


def envelope(welcome: Welcome, *, pattern: str, platform_url: str) -> dict[str, Any]:
    """The NestJS message: ``{"pattern": …, "data": …}`` with the user in three places."""
    platform = platform_url.rstrip("/")
    user = _user(
        welcome.identity_id, welcome.first_name, welcome.email, welcome.display_name, platform
    )
    return {
        "pattern": pattern,
        "data": {
            "eventType": pattern,
            "triggeredBy": user,
            "recipients": [user],
            "platform": {"url": platform},
            "user": user,
        },
    }
