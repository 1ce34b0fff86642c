"""``kratos-hooks outbox list|replay|purge`` on what a broker outage left behind."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from handlers.hooks.outbox import Entry, PostgresOutbox
from handlers.hooks.spool import SpoolBusy, SpoolOutbox
from tests.hooks.cli_helpers import run_cli
from tests.hooks.conftest import API_KEY, HEADER, Consumer, HooksFactory
from tests.hooks.test_late_confirms import event_entry
from tests.hooks.test_verification import expected_envelope, jsonnet_payload
from tests.support.process import ServiceProcess
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


async def test_every_worker_spool_file_is_listed_and_left_alone_while_its_worker_runs(
    consumer: Consumer, relay_to: Any, amqp_url: str, tmp_path: Path
) -> None:
    """WORKERS=2 without a database: one spool file per worker, all seen by the commands."""
    broker: FaultyRelay = await relay_to("127.0.0.1", 5672)
    broker.cut()
    spool = tmp_path / "spool"
    env = {"SPOOL_DIR": str(spool), "HOOKS_QUEUE": consumer.queue}
    service = ServiceProcess(
        {
            **env,
            "HOOKS_API_KEYS": API_KEY,
            "HOOKS_PLATFORM_URL": "https://alkem.io",
            "HOOKS_RELAY_INTERVAL": "0.2",
            "HOOKS_RELAY_MAX_BACKOFF": "0.5",
            "HOOKS_AMQP_RECONNECT_INTERVAL": "0.3",
            "RABBITMQ_URL": broker.url("amqp", "/", "guest:guest"),
        },
        args=("--workers", "2"),
    )
    await service.start()
    files = [spool / f"outbox-worker-{n}.jsonl" for n in (0, 1)]
    ids: list[str] = []
    try:
        # A new connection per call: SO_REUSEPORT spreads them over both workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while len(ids) < 4 or not all(f.exists() and f.stat().st_size for f in files):
                assert len(ids) < 64, "every call went to the same worker"
                ids.append(str(uuid.uuid4()))
                async with http.post(
                    service.internal_url + "/hooks/kratos/verification",
                    json=jsonnet_payload(ids[-1]),
                    headers=HEADER,
                ) as response:
                    assert (await response.json()) == {"status": "queued"}

        code, out, err = await run_cli(["outbox", "list", "--limit", "1000"], **env)
        assert code == 0
        lines = out.strip().splitlines()
        assert len(lines) == len(ids)
        assert all("pending" in line for line in lines)
        for file in files:
            assert any(f"in={file.name}" in line for line in lines)
        assert f"{len(ids)} pending (spool)" in err

        # The workers own their files: nothing is rewritten under their feet.
        before = [f.read_bytes() for f in files]
        code, out, err = await run_cli(["outbox", "replay"], RABBITMQ_URL=amqp_url, **env)
        assert code == 1
        assert f"replayed 0: delivered 0, still pending {len(ids)}" in out
        for file in files:
            assert f"{file.name}: " in err
        assert "running kratos-hooks process" in err
        code, out, err = await run_cli(["outbox", "purge", "--pending", "--yes"], **env)
        assert (code, out.strip()) == (1, "purged 0 entries")
        assert all(f"{file.name}: " in err for file in files)
        assert [f.read_bytes() for f in files] == before
        assert await consumer.drain(want=0, timeout=0.3, settle=0.3) == []
    finally:
        await service.stop()

    code, out, err = await run_cli(["outbox", "replay"], RABBITMQ_URL=amqp_url, **env)
    assert code == 0, err
    assert f"replayed {len(ids)}: delivered {len(ids)}, still pending 0" in out
    bodies = await consumer.drain(want=len(ids), settle=0.5)
    assert sorted(b["data"]["user"]["id"] for b in bodies) == sorted(ids)
    assert all(b == expected_envelope(b["data"]["user"]["id"]) for b in bodies)

    code, out, _ = await run_cli(["outbox", "list", "--all", "--limit", "1000"], **env)
    assert out.count("delivered") == len(ids)
    code, out, _ = await run_cli(["outbox", "purge", "--delivered-older-than", "0"], **env)
    assert (code, out.strip()) == (0, f"purged {len(ids)} entries")
    code, out, err = await run_cli(["outbox", "list", "--all"], **env)
    assert (out, err.strip()) == ("", "0 pending (spool)")


async def test_a_worker_starting_during_an_operator_command_waits_for_it(tmp_path: Path) -> None:
    name = "outbox-worker-0.jsonl"
    command = SpoolOutbox(str(tmp_path), retention=3600, filename=name, exclusive=True)
    await command.open()
    await command.put(Entry("event:X:1", "event", {"n": 1}), reserve=True)
    worker = SpoolOutbox(str(tmp_path), retention=3600, filename=name)
    starting = asyncio.create_task(worker.start())
    await asyncio.sleep(0.5)
    assert not starting.done()  # no second writer while the command owns the file
    await command.close()
    await asyncio.wait_for(starting, 5)
    assert list(worker.entries_by_key) == ["event:X:1"]
    again = SpoolOutbox(str(tmp_path), retention=3600, filename=name, exclusive=True)
    with pytest.raises(SpoolBusy):
        await again.open()
    await worker.close()
    await again.open()  # the worker is gone: the file is free again
    assert list(again.entries_by_key) == ["event:X:1"]
    await again.close()


async def test_replay_leaves_an_entry_a_live_replica_is_publishing(
    consumer: Consumer, amqp_url: str, database_url: str, tmp_path: Path
) -> None:
    # A replica holds a claim (its publish still waits for a confirm): an operator's replay
    # must not publish the entry beside it.
    table = f"ob_{uuid.uuid4().hex[:8]}"
    env = {
        "SPOOL_DIR": str(tmp_path / "spool"),
        "HOOKS_QUEUE": consumer.queue,
        "DATABASE_URL": database_url,
        "HOOKS_OUTBOX_TABLE": table,
        "RABBITMQ_URL": amqp_url,
    }
    replica = PostgresOutbox(database_url, table, owner="live-replica")
    await replica.start()
    try:
        held, free = str(uuid.uuid4()), str(uuid.uuid4())
        assert await replica.put(event_entry(held), reserve=True, lease=60)
        assert await replica.put(event_entry(free), reserve=True)
        code, out, _ = await run_cli(["outbox", "replay"], **env)
        assert "delivered 1, still pending 1" in out
        assert code == 1
        [body] = await consumer.drain(want=1, settle=0.5)
        assert body["data"]["user"]["id"] == free
        code, out, _ = await run_cli(["outbox", "replay", "--identity", held], **env)
        assert "delivered 0, still pending 1" in out
        assert await consumer.drain(want=1, timeout=0.3, settle=0.3) == [body]
    finally:
        await replica.close()
