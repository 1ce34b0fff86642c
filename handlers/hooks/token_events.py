"""TOKEN_LEAKED and TOKEN_EXPIRING: the credentials feature announces a ``TokenNotice`` on the
kernel bus; this writes it to the outbox as the welcome event is written (same NestJS
envelope, same queue, same once-per-key outbox entry and stable message id, same relay), so a
broker outage delays the owner's notice and never loses it.

The recipient of a personal access token's notice is its owner, read from Kratos' admin API
(email and names, as the welcome event carries them); when Kratos cannot say, the notice goes
out with the identity id alone. An API key's or a service token's notice has no recipient
user: ``data.owner`` names the organisation or service, for the platform to route.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from handlers.hooks.events import event_key, message_id, user_document
from handlers.hooks.hook_keys import DELIVERIES, OUTBOX, SYNC
from handlers.hooks.outbox import Entry
from proxy.kernel.bus import TokenNotice
from proxy.kernel.kernel_keys import SETTINGS
from proxy.kernel.kratos_admin import AdminUnavailable, IdentityGone
from proxy.kernel.logs import fingerprint

log = logging.getLogger("kratos_hooks.hooks.tokens")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def token_envelope(
    notice: TokenNotice, *, pattern: str, platform_url: str, user: dict[str, Any] | None
) -> dict[str, Any]:
    """The NestJS message for ``notice`` (pure)."""
    platform = platform_url.rstrip("/")
    data: dict[str, Any] = {
        "eventType": pattern,
        "platform": {"url": platform},
        "token": {
            "id": notice.token_id,
            "kind": notice.kind,
            "name": notice.name,
            "hint": notice.hint,
            "scopes": list(notice.scopes),
            "expiresAt": _iso(notice.expires_at),
        },
        "owner": {"type": {"pat": "user", "key": "organization"}.get(notice.kind, "service"),
                  "id": notice.owner},
    }  # fmt: skip
    if notice.event == "leaked":
        data["token"]["revokedAt"] = _iso(notice.at)
        data["token"]["revokedReason"] = "leaked"
        data["reportedBy"] = notice.source
    if user is not None:
        data |= {"triggeredBy": user, "recipients": [user], "user": user}
    else:
        data["recipients"] = []
    return {"pattern": pattern, "data": data}


async def _owner(app: web.Application, notice: TokenNotice) -> dict[str, Any] | None:
    if notice.kind != "pat":
        return None
    platform = app[SETTINGS].hooks.platform_url
    try:
        identity = await app[SYNC].admin.get_identity(notice.owner)
    except (AdminUnavailable, IdentityGone) as exc:
        log.warning(
            "token notice without the owner's details",
            extra={"identity": fingerprint(notice.owner), "error": str(exc)},
        )
        identity = {"id": notice.owner}
    return user_document(identity, platform)


def notices(app: web.Application) -> Any:
    """The bus subscriber that records a notice (raising makes the announcer retry later)."""

    async def record(notice: TokenNotice) -> None:
        hooks = app[SETTINGS].hooks
        pattern = (
            hooks.token_leaked_pattern if notice.event == "leaked" else hooks.token_expiring_pattern
        )
        body = token_envelope(
            notice, pattern=pattern, platform_url=hooks.platform_url, user=await _owner(app, notice)
        )
        entry = Entry(
            event_key(pattern, notice.token_id),
            "event",
            {"message_id": message_id(pattern, notice.token_id), "body": body},
        )
        if await app[OUTBOX].put(entry, reserve=True, lease=hooks.outbox_lease):
            app[DELIVERIES].start(entry)
        log.info("token notice recorded", extra={"pattern": pattern, "token_id": notice.token_id})

    return record
