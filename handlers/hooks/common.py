"""What every hook call goes through: authentication, the body bound, JSON decoding, the
time budget, and one log line plus metrics per call.

A hook handler is ``async (request, call) -> (response, outcome)``; ``hook()`` wraps it
into an aiohttp handler. Errors are raised (``proxy.kernel.errors``) and rendered by the shared
middleware, so a 401, 413 or 503 looks like every other error of the service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from handlers.hooks.hook_metrics import HOOK_LATENCY, HOOK_REQUESTS
from proxy.kernel.errors import BadRequest, KratosHooksError
from proxy.kernel.hook_gate import HookNotConfigured
from proxy.kernel.kernel_keys import HOOK_GATE, ROUTE, SETTINGS

log = logging.getLogger("kratos_hooks.hooks")


@dataclass(frozen=True, slots=True)
class Call:
    body: bytes
    started: float
    budget: float

    def remaining(self, floor: float = 0.05) -> float:
        """Seconds left of the budget (never less than ``floor``)."""
        return max(floor, self.budget - (time.perf_counter() - self.started))

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise BadRequest("The request body is not valid JSON") from None


Answer = tuple[web.StreamResponse, str]
HookHandler = Callable[[web.Request, Call], Awaitable[Answer]]


def _outcome_of(exc: KratosHooksError) -> str:
    if isinstance(exc, HookNotConfigured):
        return "not_configured"
    return {401: "unauthorized", 413: "too_large", 400: "invalid", 503: "unavailable"}.get(
        exc.status, "error"
    )


def hook(name: str, handler: HookHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        request[ROUTE] = "hooks"
        settings = request.app[SETTINGS].hooks
        started = time.perf_counter()
        outcome, status = "error", 500
        try:
            body = await request.app[HOOK_GATE].body(request)
            response, outcome = await handler(request, Call(body, started, settings.budget))
            status = response.status
            return response
        except KratosHooksError as exc:
            outcome, status = _outcome_of(exc), exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            HOOK_REQUESTS.labels(name, outcome).inc()
            HOOK_LATENCY.labels(name).observe(elapsed)
            level = logging.WARNING if status >= 400 or outcome == "skipped" else logging.INFO
            log.log(
                level,
                "hook answered",
                extra={
                    "hook": name,
                    "outcome": outcome,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )

    return serve


def json_answer(document: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(document), content_type="application/json")
