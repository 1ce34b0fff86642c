"""Hot reload of the rules file on change and on SIGHUP; a broken file never replaces good ones."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.decisions.conftest import RULES, Decisions, DecisionsFactory, forwarded

HEALTH_DENIED = RULES.replace(
    'id = "health"\npaths = ["/health"]\nmethods = ["GET"]\nauthenticators = ["anonymous"]\n'
    'authorizer = "allow"',
    'id = "health"\npaths = ["/health"]\nmethods = ["GET"]\nauthenticators = ["anonymous"]\n'
    'authorizer = "deny"',
)


async def health_status(http: aiohttp.ClientSession, d: Decisions) -> int:
    async with http.get(d.url, headers=forwarded("/health")) as response:
        return response.status


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def reload_errors(http: aiohttp.ClientSession, d: Decisions) -> float:
    async with http.get(d.service.internal_url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith('kratos_hooks_decisions_rule_reloads_total{result="error"}'):
            return float(line.split()[-1])
    return 0.0


async def write(path: Path, text: str) -> None:
    # Rename into place, as config management tools do: readers never see half a file.
    def replace() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    await asyncio.get_running_loop().run_in_executor(None, replace)


async def test_changed_file_is_picked_up(
    decisions: Decisions, rules_file: Path, http: aiohttp.ClientSession
) -> None:
    assert await health_status(http, decisions) == 200
    await write(rules_file, HEALTH_DENIED)

    async def denied() -> bool:
        return await health_status(http, decisions) == 403

    assert await until(denied)


async def test_broken_file_is_rejected_and_old_rules_stay(
    decisions: Decisions, rules_file: Path, http: aiohttp.ClientSession
) -> None:
    errors_before = await reload_errors(http, decisions)
    await write(rules_file, RULES + '\n[[rules]]\nid = "bad"\nauthenticators = ["nope"]\n')

    async def rejected() -> bool:
        return await reload_errors(http, decisions) > errors_before

    assert await until(rejected)
    assert await health_status(http, decisions) == 200  # the previous rules still answer
    await write(rules_file, HEALTH_DENIED)

    async def fixed() -> bool:
        return await health_status(http, decisions) == 403

    assert await until(fixed)


async def test_sighup_reloads_without_polling(
    start_decisions: DecisionsFactory, rules_file: Path, http: aiohttp.ClientSession
) -> None:
    d = await start_decisions(DECISIONS_RELOAD_INTERVAL="0")
    await write(rules_file, HEALTH_DENIED)
    await asyncio.sleep(0.3)
    assert await health_status(http, d) == 200  # no polling: nothing noticed yet
    os.kill(os.getpid(), signal.SIGHUP)

    async def denied() -> bool:
        return await health_status(http, d) == 403

    assert await until(denied)
