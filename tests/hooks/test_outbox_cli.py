"""``kratos-hooks outbox list|replay|purge`` on what a broker outage left behind."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.hooks.cli_helpers import run_cli
from tests.hooks.conftest import HEADER, Consumer, HooksFactory
from tests.hooks.test_verification import expected_envelope, jsonnet_payload
from tests.support.relay import FaultyRelay


@pytest.mark.parametrize("backend", ["spool", "postgres"])
async def test_list_replay_purge(
    hooks_service: HooksFactory,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    relay_to: Any,
    amqp_url: str,
    database_url: str,
    tmp_path: Path,
    backend: str,
) -> None:
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    broker.cut()
    env = {"SPOOL_DIR": str(tmp_path / "spool"), "HOOKS_QUEUE": consumer.queue}
    if backend == "postgres":
        env |= {"DATABASE_URL": database_url, "HOOKS_OUTBOX_TABLE": f"ob_{uuid.uuid4().hex[:8]}"}
    svc = await hooks_service(
        wait_for_broker=False, RABBITMQ_URL=broker.url("amqp", "/", "guest:guest"), **env
    )
    ids = [str(uuid.uuid4()) for _ in range(2)]
    for identity_id in ids:
        async with http.post(
            svc.internal_url + "/hooks/kratos/verification",
            json=jsonnet_payload(identity_id),
            headers=HEADER,
        ) as response:
            assert (await response.json()) == {"status": "queued"}
    await svc.running.stop()  # the operator works on a stopped service's spool

    code, out, err = await run_cli(["outbox", "list"], **env)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert all("pending" in line and "event:USER_SIGN_UP_WELCOME:" in line for line in lines)
    assert not any(identity_id in out for identity_id in ids)  # fingerprints only
    assert f"2 pending ({backend})" in err

    code, out, _ = await run_cli(
        ["outbox", "replay", "--identity", ids[0]], RABBITMQ_URL=amqp_url, **env
    )
    assert "replayed 1: delivered 1, still pending 1" in out
    assert code == 1  # something is still pending
    assert await consumer.drain(want=1) == [expected_envelope(ids[0])]

    code, out, _ = await run_cli(["outbox", "replay"], RABBITMQ_URL=amqp_url, **env)
    assert code == 0
    assert "replayed 1: delivered 1, still pending 0" in out
    assert len(await consumer.drain(want=2)) == 2

    code, out, _ = await run_cli(["outbox", "list", "--all"], **env)
    assert out.count("delivered") == 2

    code, out, err = await run_cli(["outbox", "purge", "--pending"], **env)
    assert code == 2
    assert "--yes" in err
    code, out, _ = await run_cli(["outbox", "purge", "--delivered-older-than", "0"], **env)
    assert (code, out.strip()) == (0, "purged 2 entries")
    code, out, _ = await run_cli(["outbox", "list", "--all"], **env)
    assert out == ""
