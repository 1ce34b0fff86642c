"""``kratos-hooks reconcile identities`` over more than a thousand identities, several pages."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import sys
import uuid

from tests.conftest import Kratos
from tests.hooks.cli_helpers import run_cli
from tests.hooks.conftest import Platform
from tests.support.process import ROOT

TOTAL = 1050


def seed(kratos: Kratos, platform: Platform) -> dict[str, str]:
    """1,050 identities: 700 bare, 200 correct, 100 stale, 50 unknown to the platform."""
    kinds: dict[str, str] = {}
    for n in range(TOTAL):
        user, agent = f"user-{n}", f"agent-{n}"
        if n < 700:
            kind, meta = "bare", None
        elif n < 900:
            kind, meta = "correct", {"alkemio_actor_id": user, "alkemio_agent_id": agent, "x": 1}
        elif n < 1000:
            kind, meta = "stale", {"alkemio_actor_id": "old", "alkemio_agent_id": agent}
        else:
            kind, meta = "unknown", None
        identity = kratos.state.add_identity(f"u{n}@example.org", "pw", metadata_public=meta)
        kinds[identity["id"]] = kind
        if kind != "unknown":
            platform.state.users[identity["id"]] = (user, agent)
    return kinds


async def test_reconcile_repairs_every_page_and_is_idempotent(
    kratos: Kratos, platform: Platform
) -> None:
    kinds = seed(kratos, platform)
    env = {
        "KRATOS_ADMIN_URL": kratos.admin_url,
        "HOOKS_PLATFORM_API_URL": platform.url,
        "HOOKS_RESOLVERS": "api",
    }
    argv = ["reconcile", "identities", "--concurrency", "16", "--page-size", "200"]

    code, out, err = await run_cli([*argv, "--dry-run"], **env)
    assert code == 0, err
    assert out.strip() == ("seen 1050, already correct 200, to repair 800, not found 50, failed 0")
    assert not any(r.method == "PATCH" for r in kratos.state.requests)
    assert "seen 1050" in err  # the last progress line
    assert kratos.state.count("GET", "/admin/identities") == 6  # 1,050 / 200: six pages

    code, out, _ = await run_cli(argv, **env)
    assert code == 0
    assert out.strip() == "seen 1050, already correct 200, repaired 800, not found 50, failed 0"
    assert sum(r.method == "PATCH" for r in kratos.state.requests) == 800
    for identity_id, kind in kinds.items():
        meta = kratos.state.identities[identity_id]["metadata_public"]
        if kind == "unknown":
            assert meta is None
        else:
            user, agent = platform.state.users[identity_id]
            assert meta["alkemio_actor_id"] == user
            assert meta["alkemio_agent_id"] == agent
            if kind == "correct":
                assert meta["x"] == 1  # other keys survive

    kratos.state.reset_calls()
    code, out, _ = await run_cli(argv, **env)
    assert code == 0
    assert out.strip() == "seen 1050, already correct 1000, repaired 0, not found 50, failed 0"
    assert not any(r.method == "PATCH" for r in kratos.state.requests)


async def test_reconcile_reports_failures_and_exits_1(kratos: Kratos, platform: Platform) -> None:
    for n in range(5):
        identity = kratos.state.add_identity(f"f{n}@example.org", "pw")
        platform.state.users[identity["id"]] = (str(uuid.uuid4()), str(uuid.uuid4()))
    platform.state.fail_next = 1000
    code, out, _ = await run_cli(
        ["reconcile", "identities"],
        KRATOS_ADMIN_URL=kratos.admin_url,
        HOOKS_PLATFORM_API_URL=platform.url,
        HOOKS_RESOLVERS="api",
        HOOKS_HTTP_ATTEMPTS="1",
    )
    assert code == 1
    assert out.strip().endswith("failed 5")
    assert not any(r.method == "PATCH" for r in kratos.state.requests)


def _read_terminal(master: int) -> bytes:
    """Everything written to the pty until its last writer is gone."""
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_reconcile_draws_a_progress_bar_on_a_terminal(
    kratos: Kratos, platform: Platform
) -> None:
    for n in range(40):
        identity = kratos.state.add_identity(f"t{n}@example.org", "pw")
        if n % 4:  # every fourth one is unknown to the platform
            platform.state.users[identity["id"]] = (f"user-{n}", f"agent-{n}")
    platform.state.delay = 0.02  # long enough for the bar to be redrawn along the way
    env = {
        **os.environ,
        "KRATOS_ADMIN_URL": kratos.admin_url,
        "HOOKS_PLATFORM_API_URL": platform.url,
        "HOOKS_RESOLVERS": "api",
        "LOG_LEVEL": "WARNING",
    }
    master, terminal = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "reconcile",
            "identities",
            "--concurrency",
            "1",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
            env=env,
            cwd=ROOT,
        )
    finally:
        os.close(terminal)
    try:
        screen = (await asyncio.to_thread(_read_terminal, master)).decode()
    finally:
        os.close(master)
    assert await asyncio.wait_for(proc.wait(), 30) == 0, screen

    summary = "seen 40, already correct 0, repaired 30, not found 10, failed 0"
    # Redrawn in place: carriage return, bar, counts, rate, erase to the end of the line.
    frames = re.findall(r"\r\[([#.]{20})\] (seen [^\r\n\x1b]*) \(\d+/s\)\x1b\[K", screen)
    assert len(frames) >= 2, screen
    assert frames[-1] == ("#" * 15 + "." * 5, summary)  # 30 of 40 resolved
    assert "/s)\r\n" not in screen  # no plain progress lines on a terminal
    # The bar's line is ended, then the summary is printed on a line of its own.
    assert screen.endswith(f"\x1b[K\r\n{summary}\r\n"), screen
