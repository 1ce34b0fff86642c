"""One publish in flight per welcome-event entry, and what its outcome does to the entry.

Whoever wants an event entry published — the verification hook right after recording it, the
relay for the entries it claimed, an operator's replay — asks ``Deliveries.start``. While a
publish of that entry is in flight in this process, the same one is handed back: never a
second publish beside it. The publish waits for its confirm up to HOOKS_CONFIRM_TIMEOUT,
however long the asker waits: the hook answers Kratos after HOOKS_PUBLISH_TIMEOUT, and a confirm
that comes later still marks the entry delivered. Other replicas are kept off the entry by the
outbox claim (a lease longer than the confirm wait, see ``outbox.py``).

What each outcome (``publisher.PublishOutcome``) does to the entry:

  confirmed  marked delivered — retried until the outbox takes it, since an entry left
             pending would be published again
  nacked     the broker did not keep it: released, due again after a backoff
  unsent     no connection, nothing left this process: released, due at once (the relay
             publishes events only while the broker is connected)
  unknown    it may be in the queue: released only once the broker connection has been
             replaced by a new one, then published again under the same message id — the one
             case in which a consumer can receive the event twice
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from handlers.hooks.hook_metrics import LATE_CONFIRMS, OUTBOX_PUBLISHES
from handlers.hooks.outbox import Entry, Outbox, OutboxUnavailable, identity_tag
from handlers.hooks.publisher import Publisher, PublishOutcome

log = logging.getLogger("kratos_hooks.hooks.delivery")
RECORD_RETRY = (0.2, 5.0)  # first and longest pause between tries to record a delivery


def retry_delay(
    attempts: int, *, base: float = 1.0, cap: float = 300.0, jitter: float = 0.2
) -> float:
    """Seconds before the next try of an entry that failed ``attempts`` times (pure)."""
    delay = min(cap, base * (2.0 ** min(attempts, 30)))
    return delay * (1 + jitter * random.random())


@dataclass(eq=False, slots=True)
class Delivery:
    """One publish of one entry: its outcome, once the broker told (or could not)."""

    key: str
    started: float
    outcome: asyncio.Future[PublishOutcome]
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, timeout: float) -> PublishOutcome | None:
        """The outcome, if it is known within ``timeout`` seconds (the publish goes on)."""
        if not self.outcome.done():
            await asyncio.wait([self.outcome], timeout=max(0.0, timeout))
        return self.outcome.result() if self.outcome.done() else None

    async def wait_settled(self, timeout: float) -> bool:
        """Whether the outcome has been written to the outbox within ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled.wait(), max(0.0, timeout))
        return self.settled.is_set()


class Deliveries:
    def __init__(
        self,
        outbox: Outbox,
        publisher: Publisher | None,
        *,
        confirm_timeout: float,
        lease: float,
        patience: float,
        max_backoff: float,
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.confirm_timeout = confirm_timeout
        self.lease = lease
        self.patience = patience  # how long the hook waits; a confirm after it is "late"
        self.max_backoff = max_backoff
        self.on_release: Callable[[], None] = lambda: None  # the relay's kick
        self._flying: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def in_flight(self, key: str) -> bool:
        return key in self._flying

    def start(self, entry: Entry) -> Delivery:
        """Publish ``entry`` (claimed by this process), or join its publish in flight."""
        flying = self._flying.get(entry.key)
        if flying is not None:
            return flying
        loop = asyncio.get_running_loop()
        delivery = Delivery(entry.key, loop.time(), loop.create_future())
        self._flying[entry.key] = delivery
        task = asyncio.create_task(self._run(entry, delivery), name="kratos-hooks-delivery")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery

    async def _run(self, entry: Entry, delivery: Delivery) -> None:
        try:
            outcome, epoch = await self._publish(entry)
            delivery.outcome.set_result(outcome)
            OUTBOX_PUBLISHES.labels(outcome).inc()
            await self._settle(entry, delivery, outcome, epoch)
        except Exception:
            log.exception("welcome event delivery failed", extra={"identity": _tag(entry)})
            if not delivery.outcome.done():
                delivery.outcome.set_result("unknown")
        finally:
            if self._flying.get(entry.key) is delivery:
                del self._flying[entry.key]
            delivery.settled.set()

    async def _publish(self, entry: Entry) -> tuple[PublishOutcome, int]:
        publisher = self.publisher
        if publisher is None:
            return "unsent", 0
        epoch = publisher.epoch
        body = orjson.dumps(entry.payload["body"])
        message_id = str(entry.payload["message_id"])
        return await publisher.send(body, message_id, confirm_timeout=self.confirm_timeout), epoch

    async def _settle(
        self, entry: Entry, delivery: Delivery, outcome: PublishOutcome, epoch: int
    ) -> None:
        loop = asyncio.get_running_loop()
        waited = loop.time() - delivery.started
        who = _tag(entry)
        if outcome == "confirmed":
            if waited > self.patience:
                LATE_CONFIRMS.inc()
                log.info(
                    "late broker confirm arrived: the event is delivered, not published again",
                    extra={"identity": who, "waited_s": round(waited, 2)},
                )
            await self._record_delivered(entry.key, who)
        elif outcome == "nacked":
            delay = retry_delay(entry.attempts, cap=self.max_backoff)
            log.warning(
                "broker refused the welcome event, retrying later",
                extra={"identity": who, "retry_in_s": round(delay, 1)},
            )
            await self._release(entry.key, delay, "broker: nacked")
        elif outcome == "unsent":
            await self._release(entry.key, 0.0, "broker: not connected")
        else:
            log.warning(
                "broker outcome unknown: the event is published again, same message id, once "
                "the connection is re-made",
                extra={"identity": who, "waited_s": round(waited, 2)},
            )
            if self.publisher is not None:
                # Never on the connection that may still deliver it; the lease bounds the wait.
                left = self.lease - (loop.time() - delivery.started) - 1.0
                await self.publisher.wait_replaced(epoch, left)
            await self._release(entry.key, 0.0, "broker: outcome unknown")

    async def _record_delivered(self, key: str, who: str) -> None:
        pause, longest = RECORD_RETRY
        warned = False
        while True:
            try:
                await self.outbox.delivered(key)
            except OutboxUnavailable as exc:
                if not warned:
                    log.warning(
                        "delivered event not recorded yet, retrying",
                        extra={"identity": who, "error": str(exc)},
                    )
                    warned = True
                await asyncio.sleep(pause)
                pause = min(longest, pause * 2)
                continue
            if warned:
                log.info("delivered event recorded", extra={"identity": who})
            return

    async def _release(self, key: str, delay: float, reason: str) -> None:
        try:
            await self.outbox.retry_later(key, delay, reason)
        except OutboxUnavailable as exc:
            # Still claimed: due again when the lease runs out.
            log.warning(
                "outbox claim not released",
                extra={"identity": identity_tag(key), "error": str(exc)},
            )
        self.on_release()

    async def close(self, timeout: float) -> None:
        """Let publishes in flight learn their outcome and record it, up to ``timeout``."""
        pending = list(self._tasks)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _tag(entry: Entry) -> str:
    return identity_tag(entry.key)
