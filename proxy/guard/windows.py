"""Plain per-IP windows on the other self-service submissions (registration, recovery,
verification), on top of which login has its own raw rate inside the backoff check.

A refused submission never reaches Kratos and is answered like a login lockout: JSON callers
get their flow back with the message (or Kratos' error shape, 429), browsers a 303 to the
flow's UI, whose flow then shows the message (``handler.flow_view``) — or a 429 page while
that UI is unknown. An allowed submission is forwarded as sent, and Kratos' redirect back to
the same flow teaches the guard the UI's address.
"""

from __future__ import annotations

from proxy.guard.core import Guard
from proxy.guard.login_hooks import answer_block, json_caller
from proxy.guard.respond import refuse
from proxy.kernel.errors import BodyTooLarge, DependencyUnavailable
from proxy.kernel.hooked import Hook, Hooked, Reply


def limited(guard: Guard, flow: str, limit: int) -> Hook:
    """The hook of ``POST /self-service/<flow>``."""

    async def hook(request: Hooked) -> Reply:
        json_mode = json_caller(request)
        flow_id = request.view.flow_id()
        rate = guard.rate_window(flow, guard.names.address(request.client_ip), limit)
        try:
            if rate is not None and not (verdict := await guard.hit(rate)).allowed:
                return await answer_block(request, guard, flow, flow_id, verdict, json_mode)
            body = await request.read(guard.config.max_body, f"The {flow} submission")
        except (BodyTooLarge, DependencyUnavailable) as exc:
            return refuse(exc, json_mode=json_mode)
        answer = await request.forward(body)
        guard.ui.learn(flow, answer.headers.get("Location"), flow_id)
        return Reply.relay(answer)

    return hook
