"""Publishing to RabbitMQ: persistent messages, publisher confirms, a robust connection.

The connection is made in a background task (the channel and queue set-up retried with
tenacity), so the service starts while the broker is down; aio-pika's robust connection then
reconnects by itself and re-declares the durable queue. ``publish`` never waits for a
reconnect: when the broker is not there, the caller hands the event to the outbox at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
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


class BrokerUnavailable(Exception):
    """The message was not confirmed by the broker (down, refused, or too slow)."""


class Publisher:
    def __init__(self, url: str, queue: str, *, reconnect_interval: float) -> None:
        self.url = url
        self.queue = queue
        self.reconnect_interval = reconnect_interval
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        # Set whenever a (re)connection completes: the relay wakes up on it.
        self.reconnected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        self.reconnected.set()
        log.info("connected to the broker", extra={"queue": self.queue})

    def _on_reconnect(self, *_: Any) -> None:
        log.info("reconnected to the broker")
        self.reconnected.set()

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

    async def publish(self, body: bytes, message_id: str, *, timeout: float) -> None:
        """Return once the broker confirmed the message; else raise ``BrokerUnavailable``."""
        if not self.connected or self.channel is None:
            raise BrokerUnavailable("not connected")
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
        )
        try:
            async with asyncio.timeout(timeout):
                confirmation: (
                    ConfirmationFrameType | Any
                ) = await self.channel.default_exchange.publish(message, routing_key=self.queue)
        except TimeoutError as exc:
            raise BrokerUnavailable("no confirm in time") from exc
        except Exception as exc:  # aio-pika / aiormq / socket errors alike
            raise BrokerUnavailable(type(exc).__name__) from exc
        if not isinstance(confirmation, spec.Basic.Ack):
            raise BrokerUnavailable("not acknowledged")

    def report(self) -> dict[str, Any]:
        if self.connected:
            return {"status": "ok", "queue": self.queue}
        return {"status": "degraded", "note": "broker unreachable: events wait in the outbox"}

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
