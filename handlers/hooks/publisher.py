"""Publishing to RabbitMQ: persistent messages, publisher confirms, a robust connection.

The connection is made in a background task (the channel and queue set-up retried with
tenacity), so the service starts while the broker is down; aio-pika's robust connection then
reconnects by itself and re-declares the durable queue. ``send`` never waits for a
reconnect: when the broker is not there it answers ``unsent`` at once. It publishes once and
never again by itself: whether and when to publish again is the caller's (``delivery.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

import aio_pika
from aio_pika.exceptions import DeliveryError, PublishError
from aiormq import spec
from aiormq.abc import ConfirmationFrameType
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random,
)
from yarl import URL

from config.settings import Settings

log = logging.getLogger("kratos_hooks.hooks.publisher")
CLOSE_WAIT = 3.0  # seconds a given-up connection may take to close


PublishOutcome = Literal["confirmed", "nacked", "unknown", "unsent"]
"""What became of one publish: ``confirmed`` (acked: in the queue), ``nacked`` (the broker
refused it or could not route it: not in the queue), ``unsent`` (no connection: nothing left
this process) and ``unknown`` (it was written to a connection that was lost, or stayed
silent past the confirm timeout, before its confirm came: it may or may not be in the queue)."""


class Publisher:
    def __init__(self, url: str, queue: str, *, reconnect_interval: float) -> None:
        self.url = url
        self.queue = queue
        self.reconnect_interval = reconnect_interval
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        # Set whenever a (re)connection completes: the relay wakes up on it.
        self.reconnected = asyncio.Event()
        # One number per broker connection, and a future resolved when that connection has
        # been replaced by a new one: a publish of unknown outcome waits on it.
        self.epoch = 0
        self._replaced: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task: asyncio.Task[None] | None = None
        self._giving_up: asyncio.Task[None] | None = None

    @classmethod
    async def started(cls, settings: Settings) -> Publisher | None:
        """A publisher connecting in the background to the configured broker, or None when
        no ``RABBITMQ_URL`` is set (events then stay in the outbox)."""
        if not settings.store.rabbitmq_url:
            return None
        publisher = cls(
            settings.store.rabbitmq_url,
            settings.hooks.queue,
            reconnect_interval=settings.hooks.amqp_reconnect_interval,
        )
        await publisher.start()
        return publisher

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="kratos-hooks-amqp-connect")

    async def _connect(self) -> None:
        # Made here, not by connect_robust(): that one leaks the connection object when the
        # first attempt fails, and its finaliser then schedules a close on whatever loop runs.
        # fail_fast off: connect() waits through an outage, reconnecting by itself.
        url = URL(self.url).update_query(
            reconnect_interval=str(self.reconnect_interval), fail_fast="0"
        )
        connection = aio_pika.RobustConnection(url)
        self.connection = connection
        connection.reconnect_callbacks.add(self._on_reconnect)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.2, max=max(0.2, self.reconnect_interval))
            + wait_random(0, 0.1),
            stop=stop_never,
        ):
            with attempt:
                await connection.connect(timeout=5)
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await channel.declare_queue(self.queue, durable=True)
        self.channel = channel
        self._next_epoch()
        log.info("connected to the broker", extra={"queue": self.queue})

    def _on_reconnect(self, *_: Any) -> None:
        log.info("reconnected to the broker")
        self._next_epoch()

    def _next_epoch(self) -> None:
        self.epoch += 1
        replaced, self._replaced = self._replaced, asyncio.get_running_loop().create_future()
        replaced.set_result(None)
        self.reconnected.set()

    async def wait_replaced(self, epoch: int, timeout: float) -> bool:
        """Whether the connection of ``epoch`` has been replaced by a newer one (waiting up to
        ``timeout`` seconds for it)."""
        if self.epoch > epoch:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._replaced), timeout)
        return self.epoch > epoch

    @property
    def connected(self) -> bool:
        connection, channel = self.connection, self.channel
        return (
            connection is not None
            and channel is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and not channel.is_closed
        )

    async def send(self, body: bytes, message_id: str, *, confirm_timeout: float) -> PublishOutcome:
        """Publish once and wait up to ``confirm_timeout`` for the broker's confirm. Never
        retries: a publish whose outcome is unknown must not be repeated on this connection,
        so after a confirm timeout the connection is given up (and re-made)."""
        epoch, channel = self.epoch, self.channel
        if not self.connected or channel is None:
            return "unsent"
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        try:
            async with asyncio.timeout(confirm_timeout):
                confirmation: ConfirmationFrameType | Any = await channel.default_exchange.publish(
                    message, routing_key=self.queue
                )
        except TimeoutError:
            self.give_up(epoch, "no confirm within HOOKS_CONFIRM_TIMEOUT")
            return "unknown"
        except (DeliveryError, PublishError):
            return "nacked"  # a nack, or returned unroutable: the broker did not keep it
        except Exception:  # the connection or channel went away before the confirm
            return "unknown"
        return "confirmed" if isinstance(confirmation, spec.Basic.Ack) else "nacked"

    def give_up(self, epoch: int, reason: str) -> None:
        """Close the connection of ``epoch`` (if it is still the current one) so that the
        robust connection makes a new one: a confirm that is that late is not waited for."""
        if epoch != self.epoch or (self._giving_up is not None and not self._giving_up.done()):
            return
        log.warning("broker connection given up, reconnecting", extra={"reason": reason})
        self._giving_up = asyncio.create_task(self._close_transport(reason))

    async def _close_transport(self, reason: str) -> None:
        connection = self.connection
        transport = None if connection is None else connection.transport
        if transport is None:
            return
        # The robust connection sees its transport close and reconnects by itself. A silent
        # peer never answers the close: aiormq bounds that wait, and so does this.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_WAIT):
                await transport.connection.close(ConnectionError(reason))

    def report(self) -> dict[str, Any]:
        if self.connected:
            return {"status": "ok", "queue": self.queue}
        return {"status": "degraded", "note": "broker unreachable: events wait in the outbox"}

    async def close(self) -> None:
        if self._giving_up is not None:
            with contextlib.suppress(Exception):
                await self._giving_up
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
