"""POST /hooks/kratos/verification: the platform's welcome event, once per identity, never lost.

Order matters for "never lost": the event is first written to the durable outbox (its
unique key is the once-per-identity guard), claimed by this process in the same write, then
reserved in Redis (the guard shared by replicas whose outboxes are local spools), then
published with a confirm (``delivery.py``). Kratos gets 200 whatever the broker does: the hook
waits up to HOOKS_PUBLISH_TIMEOUT for the confirm and answers ``published`` or ``queued``; the
publish itself goes on behind, so a late confirm still marks the entry delivered and nothing
publishes it a second time. Only when no outbox can record the event is 503 answered, so
Kratos retries instead of the event silently vanishing.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from handlers.hooks.common import Answer, Call, json_answer
from handlers.hooks.events import Welcome, envelope, event_key, message_id, parse_welcome
from handlers.hooks.hook_keys import DELIVERIES, OUTBOX, RESERVATIONS
from handlers.hooks.hook_metrics import WELCOME_EVENTS
from handlers.hooks.outbox import Entry, OutboxUnavailable
from proxy.kernel.errors import DependencyUnavailable
from proxy.kernel.kernel_keys import SETTINGS
from proxy.kernel.logs import fingerprint

log = logging.getLogger("kratos_hooks.hooks.verification")
RECORD_RESERVE = 0.25  # seconds of the budget kept back from the publish


def _skip(reason: str) -> Answer:
    WELCOME_EVENTS.labels("skipped").inc()
    log.warning("verification hook payload skipped", extra={"reason": reason})
    return json_answer({"status": "skipped", "reason": reason}), "skipped"


def _payload(call: Call) -> object:
    try:
        return orjson.loads(call.body)
    except orjson.JSONDecodeError:
        return None


async def verification(request: web.Request, call: Call) -> Answer:
    settings = request.app[SETTINGS].hooks
    parsed = parse_welcome(_payload(call))
    if not isinstance(parsed, Welcome):
        return _skip(parsed)
    pattern = settings.welcome_pattern
    key = event_key(pattern, parsed.identity_id)
    who = fingerprint(parsed.identity_id)
    document = envelope(parsed, pattern=pattern, platform_url=settings.platform_url)
    msg_id = message_id(pattern, parsed.identity_id)
    entry = Entry(key, "event", {"message_id": msg_id, "body": document})
    outbox = request.app[OUTBOX]
    try:
        # Claimed by this process: no relay publishes it while this call's publish is out.
        fresh = await outbox.put(entry, reserve=True, lease=settings.outbox_lease)
    except OutboxUnavailable as exc:
        log.error("welcome event not recorded", extra={"identity": who, "error": str(exc)})
        raise DependencyUnavailable("The event could not be recorded; retry later") from exc
    # The shared reservation comes second: taken first, a crash before the outbox write
    # would make Kratos' retry look like a duplicate, and the event would be lost.
    if fresh and await request.app[RESERVATIONS].reserve(key) is False:
        await outbox.release(key)  # another replica's outbox already has it
        fresh = False
    if not fresh:
        WELCOME_EVENTS.labels("duplicate").inc()
        return json_answer({"status": "duplicate"}), "duplicate"
    delivery = request.app[DELIVERIES].start(entry)
    # Part of the budget stays for answering; the publish itself is not bound by it.
    left = call.remaining(floor=0.0) - min(RECORD_RESERVE, settings.budget / 4)
    outcome = await delivery.wait(min(settings.publish_timeout, max(0.05, left)))
    if outcome in ("confirmed", "unsent", "nacked"):
        # Recorded behind, but quickly: waited for, so that what Kratos was told is on disk
        # (delivered, or free for any relay) before a crash could intervene.
        await delivery.wait_settled(call.remaining(floor=0.0) - 0.05)
    if outcome != "confirmed":
        WELCOME_EVENTS.labels("outboxed").inc()
        log.warning(
            "welcome event kept in the outbox",
            extra={"identity": who, "outcome": outcome or "no confirm yet"},
        )
        return json_answer({"status": "queued"}), "queued"
    WELCOME_EVENTS.labels("published").inc()
    log.info("welcome event published", extra={"identity": who})
    return json_answer({"status": "published"}), "published"
