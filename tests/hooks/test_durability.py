"""An event accepted while the broker is down survives a kill -9 of the process."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.hooks.conftest import API_KEY, HEADER, Consumer
from tests.hooks.test_verification import expected_envelope, jsonnet_payload
from tests.support.process import ServiceProcess
from tests.support.relay import FaultyRelay


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_outbox_survives_kill_and_is_delivered_after_restart(
    consumer: Consumer,
    relay_to: Any,
    amqp_url: str,
    database_url: str,
    tmp_path: Path,
    backend: str,
) -> None:
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    broker.cut()
    env = {
        "HOOKS_API_KEYS": API_KEY,
        "HOOKS_QUEUE": consumer.queue,
        "HOOKS_PLATFORM_URL": "https://alkem.io",
        "SPOOL_DIR": str(tmp_path / "spool"),
        "HOOKS_RELAY_INTERVAL": "0.2",
        "HOOKS_RELAY_MAX_BACKOFF": "0.5",
        "HOOKS_AMQP_RECONNECT_INTERVAL": "0.3",
    }
    if backend == "postgres":
        env |= {"DATABASE_URL": database_url, "HOOKS_OUTBOX_TABLE": f"ob_{uuid.uuid4().hex[:8]}"}
    first = ServiceProcess({**env, "RABBITMQ_URL": broker.url("amqp", "/", "guest:guest")})
    await first.start()
    identity_id = str(uuid.uuid4())
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                first.internal_url + "/hooks/kratos/verification",
                json=jsonnet_payload(identity_id),
                headers=HEADER,
            ) as response:
                assert response.status == 200
                assert await response.json() == {"status": "queued"}
    finally:
        first.signal(signal.SIGKILL)
        await first.wait()

    second = ServiceProcess({**env, "RABBITMQ_URL": amqp_url})
    await second.start()
    try:
        assert await consumer.drain(want=1, timeout=20) == [expected_envelope(identity_id)]
        async with aiohttp.ClientSession() as http:
            for _ in range(50):
                async with http.get(second.internal_url + "/health/ready") as response:
                    report = await response.json()
                if report["checks"]["hooks_outbox"]["pending"] == 0:
                    break
                await asyncio.sleep(0.1)
        assert report["checks"]["hooks_outbox"]["pending"] == 0
    finally:
        await second.stop()
