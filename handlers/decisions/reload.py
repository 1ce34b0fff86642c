"""Keeping the rules current: mtime polling and SIGHUP, never dropping to no rules.

A new file replaces the rules in force only once it parsed and validated whole; a broken
one is logged and counted, and the previous rules keep answering. At start-up there is no
previous set, so a broken file stops the service instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from handlers.decisions.decision_metrics import RULE_RELOADS, RULES_LOADED
from handlers.decisions.rules import RuleSet
from handlers.decisions.rules_loader import RulesError, file_stamp, load_rules_file

log = logging.getLogger("kratos_hooks.decisions")

# Several internal apps can live in one process (tests, the bench): one SIGHUP handler
# fans out to all of them instead of the last one installed winning.
_SIGHUP_LISTENERS: set[Callable[[], None]] = set()
_sighup_loop: asyncio.AbstractEventLoop | None = None


def _on_sighup() -> None:
    for listener in list(_SIGHUP_LISTENERS):
        listener()


def _listen_sighup(listener: Callable[[], None]) -> bool:
    global _sighup_loop
    loop = asyncio.get_running_loop()
    if _sighup_loop is not loop:  # first listener, or the previous loop is gone
        try:
            loop.add_signal_handler(signal.SIGHUP, _on_sighup)
        except (NotImplementedError, RuntimeError, ValueError):
            return False  # not the main thread, or no signals on this platform
        _sighup_loop = loop
        _SIGHUP_LISTENERS.clear()
    _SIGHUP_LISTENERS.add(listener)
    return True


def _unlisten_sighup(listener: Callable[[], None]) -> None:
    global _sighup_loop
    _SIGHUP_LISTENERS.discard(listener)
    if not _SIGHUP_LISTENERS and _sighup_loop is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            _sighup_loop.remove_signal_handler(signal.SIGHUP)
        _sighup_loop = None


class RulesHolder:
    """The rules in force; ``current`` is swapped atomically, readers need no lock."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.current = RuleSet(source="(no rules file: every request is denied)")
        self._stamp: tuple[float, int, int] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def load_initial(self) -> None:
        """Load at start-up; a broken file raises ``RulesError`` (the service must not start)."""
        if not self.path:
            log.warning("DECISIONS_RULES_FILE is not set: every decision is a deny")
            RULES_LOADED.set(0)
            return
        loop = asyncio.get_running_loop()
        self._stamp = await loop.run_in_executor(None, file_stamp, self.path)
        self._install(await loop.run_in_executor(None, load_rules_file, self.path))
        RULE_RELOADS.labels("ok").inc()

    def _install(self, rules: RuleSet) -> None:
        self.current = rules
        RULES_LOADED.set(len(rules.rules))
        log.info("access rules loaded", extra={"rules": len(rules.rules), "file": self.path})

    async def reload(self) -> bool:
        """Re-read the file now; True when new rules are in force."""
        loop = asyncio.get_running_loop()
        self._stamp = await loop.run_in_executor(None, file_stamp, self.path)
        try:
            rules = await loop.run_in_executor(None, load_rules_file, self.path)
        except RulesError as exc:
            RULE_RELOADS.labels("error").inc()
            log.error("rules file rejected, previous rules stay", extra={"error": str(exc)})
            return False
        RULE_RELOADS.labels("ok").inc()
        self._install(rules)
        return True

    def request_reload(self) -> None:
        self._wake.set()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = self.interval if self.interval > 0 else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            forced = self._wake.is_set()
            self._wake.clear()
            stamp = await loop.run_in_executor(None, file_stamp, self.path)
            if forced or (stamp is not None and stamp != self._stamp):
                await self.reload()

    def start(self) -> None:
        if self.path:
            self._task = asyncio.create_task(self._watch(), name="decisions-rules-watch")
            _listen_sighup(self.request_reload)

    async def stop(self) -> None:
        _unlisten_sighup(self.request_reload)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
