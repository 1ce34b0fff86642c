"""What a platform user may be looked up by (pure).

In the registration pre-persist hook (``response.parse: true``) Kratos has not stored the
identity yet, and ``ctx.identity.id`` is the nil UUID (Kratos v0.13 and later: v1.3, v25,
v26). It names no one — or, worse, whichever platform row happens to carry it — so it is
never a lookup key: not in Postgres, not at the platform API, not in Kratos' Admin API, not
in an outbox entry. Such an identity is resolved by a configured trait instead, or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

MAX_TRAIT_LENGTH = 512  # the platform's "user".email is varchar(512)


def parse_uuid(raw: str) -> uuid.UUID | None:
    """``raw`` as a UUID in any spelling Kratos' parser (gofrs/uuid) or Python's accepts:
    upper case, ``{…}``, ``urn:uuid:`` (in any case, a superset: over-accepting here only ever
    makes more spellings "not persisted"), 32 bare hex digits; None when it is not one."""
    try:
        return uuid.UUID(raw.strip().lower())
    except ValueError:
        return None


def is_nil(identity_id: str) -> bool:
    """Is this the id of an identity Kratos has not persisted yet?"""
    parsed = parse_uuid(identity_id)
    return parsed is not None and parsed.int == 0


def trait_value(identity: Mapping[str, Any] | None, path: str) -> str | None:
    """The string at ``traits.<path>`` (dotted), stripped; None when absent, not a string,
    empty or longer than any platform column holds."""
    if identity is None or not path:
        return None
    node: Any = identity.get("traits")
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if not isinstance(node, str):
        return None
    value = node.strip()
    return value if value and len(value) <= MAX_TRAIT_LENGTH else None
