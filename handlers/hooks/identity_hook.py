"""POST /hooks/kratos/identity: write the platform ids into the identity's metadata_public.

``?point=login|registration|verification|settings`` names the hook point (it selects the
failure policy); ``?mode=pre-persist`` is the registration ``response.parse: true`` mode,
where the answer itself carries the metadata Kratos stores with the new identity.

In pre-persist mode Kratos sends the nil UUID as the id (the identity is not stored yet):
it is never looked up (``lookup``); the platform user is found by ``HOOKS_RESOLVE_TRAIT``
(e.g. the email) with ``HOOKS_RESOLVE_TRAIT_QUERY``, or the answer is 204. Nothing is
recorded for a retry then — there is no id to retry by; the login and verification hooks
resolve the stored identity by its real id.

Failure policy ``allow`` answers as if nothing happened and records the identity in the
outbox for the relay; ``interrupt`` answers 400 in Kratos' ``messages`` format (a 4xx that
is not 429, so Kratos shows it and does not retry). Work still running when the budget is
spent goes on in the background, its failure recorded in the outbox the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from config.hooks import HOOK_POINTS, FailurePolicy
from handlers.hooks.common import Answer, Call, json_answer
from handlers.hooks.hook_keys import BACKGROUND, OUTBOX, RELAY, SYNC
from handlers.hooks.hook_metrics import METADATA_WRITES
from handlers.hooks.lookup import is_nil, parse_uuid
from handlers.hooks.outbox import Entry, OutboxUnavailable
from handlers.hooks.resolvers import ResolutionFailed
from handlers.hooks.sync import IdentitySync, SyncResult
from proxy.kernel.errors import BadRequest
from proxy.kernel.kernel_keys import SETTINGS
from proxy.kernel.kratos_admin import AdminUnavailable, IdentityGone
from proxy.kernel.logs import fingerprint

log = logging.getLogger("kratos_hooks.hooks.identity")
# A failed identity is retried by the relay after this many seconds (then with backoff).
RETRY_HOLD = 2.0
INTERRUPT_MESSAGE_ID = 4000001  # Kratos' generic validation message, reason as text
Failure = (ResolutionFailed, AdminUnavailable)


@dataclass(frozen=True, slots=True)
class IdentityCall:
    identity_id: str
    identity: dict[str, Any] | None


def parse_identity_call(payload: object) -> IdentityCall:
    """``{identity_id}``, the whole ``ctx.identity`` or ``{"identity": ctx.identity}``;
    raises ``BadRequest`` naming the field."""
    if not isinstance(payload, dict):
        raise BadRequest("The request body must be a JSON object")
    identity: dict[str, Any] | None = None
    if isinstance(payload.get("identity"), dict):
        identity = payload["identity"]
        raw = identity.get("id")
        field = "identity.id"
    elif "id" in payload and ("traits" in payload or "metadata_public" in payload):
        identity, raw, field = payload, payload.get("id"), "id"
    else:
        raw, field = payload.get("identity_id"), "identity_id"
    if not isinstance(raw, str) or not raw.strip():
        raise BadRequest(f"{field} is required (a string)")
    parsed = parse_uuid(raw)
    if parsed is None:
        raise BadRequest(f"{field} must be a UUID")
    return IdentityCall(str(parsed), identity)


def policy_for(point: str, default: FailurePolicy, overrides: Sequence[str]) -> FailurePolicy:
    """The failure policy of a hook point; ``overrides`` are ``point=allow|interrupt``."""
    for item in overrides:
        name, _, value = item.partition("=")
        if name.strip() == point and value.strip() in ("allow", "interrupt"):
            return "interrupt" if value.strip() == "interrupt" else "allow"
    return default


def interrupt_document(text: str) -> dict[str, Any]:
    """Kratos' web_hook error body: shown as a flow message under ``#/`` (the user reads it,
    so it carries the configured sentence, never the internal cause)."""
    return {
        "messages": [
            {
                "instance_ptr": "#/",
                "messages": [
                    {
                        "id": INTERRUPT_MESSAGE_ID,
                        "text": text,
                        "type": "error",
                        "context": {"reason": text},
                    }
                ],
            }
        ]
    }


def _query(request: web.Request) -> tuple[str, bool]:
    point = request.query.get("point", "login")
    if point not in HOOK_POINTS:
        raise BadRequest(f"point must be one of {', '.join(sorted(HOOK_POINTS))}")
    mode = request.query.get("mode", "")
    if mode not in ("", "pre-persist"):
        raise BadRequest("mode must be pre-persist when given")
    return point, mode == "pre-persist"


async def _record_retry(app: web.Application, identity_id: str, point: str) -> bool:
    entry = Entry(
        f"identity:{identity_id}", "identity", {"identity_id": identity_id, "point": point}
    )
    try:
        await app[OUTBOX].put(entry, reserve=False, hold=RETRY_HOLD)
    except OutboxUnavailable:
        log.error("identity retry not recorded", extra={"identity": fingerprint(identity_id)})
        return False
    app[RELAY].kick()
    return True


def _keep(app: web.Application, task: asyncio.Task[SyncResult]) -> None:
    """Hold a reference until the work ends: it may outlive this request."""
    tasks = app[BACKGROUND]
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _retry_if_it_fails(
    app: web.Application, task: asyncio.Task[SyncResult], identity_id: str, point: str
) -> None:
    """Work that outlived the budget goes on; if it fails, the relay retries it."""

    def done(finished: asyncio.Task[SyncResult]) -> None:
        if finished.cancelled() or not isinstance(finished.exception(), Failure):
            return
        retry = asyncio.ensure_future(_record_retry(app, identity_id, point))
        app[BACKGROUND].add(retry)
        retry.add_done_callback(app[BACKGROUND].discard)

    task.add_done_callback(done)


def _success(result: SyncResult, pre_persist: bool) -> Answer:
    METADATA_WRITES.labels("hook", result.outcome).inc()
    if pre_persist:
        if result.outcome == "would_patch":
            return json_answer({"identity": {"metadata_public": result.metadata_public}}), "merged"
        return web.Response(status=204), result.outcome
    return json_answer({"status": result.outcome}), result.outcome


async def identity(request: web.Request, call: Call) -> Answer:
    point, pre_persist = _query(request)
    parsed = parse_identity_call(call.json())
    app = request.app
    settings = app[SETTINGS].hooks
    policy = policy_for(point, settings.failure_policy, settings.failure_policy_by_point)
    sync = app[SYNC]
    unpersisted = is_nil(parsed.identity_id)
    if unpersisted and not pre_persist:
        log.warning(
            "identity hook called with the nil id outside mode=pre-persist: nothing looked up",
            extra={"point": point},
        )
    if pre_persist:
        # Not persisted yet: no Kratos read or write, the answer carries the merge.
        current = parsed.identity or {}
        snapshot = {"metadata_public": current.get("metadata_public")}
        task: asyncio.Task[SyncResult] = asyncio.ensure_future(
            sync.plan_unpersisted(current)
            if unpersisted
            else _plan_only(sync, parsed.identity_id, snapshot)
        )
    else:
        task = asyncio.ensure_future(sync.run(parsed.identity_id, parsed.identity))
    _keep(app, task)
    try:
        result = await asyncio.wait_for(asyncio.shield(task), call.remaining())
    except TimeoutError:
        if not unpersisted:
            _retry_if_it_fails(app, task, parsed.identity_id, point)
        return await _failed(app, parsed.identity_id, point, policy, pre_persist, "budget spent")
    except IdentityGone:
        METADATA_WRITES.labels("hook", "identity_gone").inc()
        return json_answer({"status": "identity_not_found"}), "identity_not_found"
    except Failure as exc:
        return await _failed(app, parsed.identity_id, point, policy, pre_persist, str(exc))
    return _success(result, pre_persist)


async def _plan_only(sync: IdentitySync, identity_id: str, snapshot: dict[str, Any]) -> SyncResult:
    planned, _ = await sync.plan(identity_id, snapshot)
    return planned


async def _failed(
    app: web.Application,
    identity_id: str,
    point: str,
    policy: FailurePolicy,
    pre_persist: bool,
    reason: str,
) -> Answer:
    METADATA_WRITES.labels("hook", "failed").inc()
    log.warning(
        "identity metadata not written",
        extra={"identity": fingerprint(identity_id), "reason": reason, "policy": policy},
    )
    if policy == "interrupt":
        text = app[SETTINGS].hooks.interrupt_message
        return json_answer(interrupt_document(text), status=400), "interrupted"
    # No id to retry by for an identity not stored yet: its later hooks carry the real one.
    recorded = not is_nil(identity_id) and await _record_retry(app, identity_id, point)
    outcome = "deferred" if recorded else "failed_open"
    if pre_persist:
        return web.Response(status=204), outcome
    return json_answer({"status": "retry_later"}), outcome
