"""Write-side flow control: why a transport is not being read, and when it may be again.

Only the transports' own write-buffer signals are used, never a queue of ours: a peer whose
socket is full (``pause_writing``) pauses reading from the other side, and its
``resume_writing`` resumes it. A client connection can be paused for several reasons at once
(the body bound reached before an upstream connection is attached, the upstream full,
pipelined requests waiting, a hooked route's body not asked for yet), so reading resumes only
when the last reason is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final


class Reason:
    BUFFER: Final = 1  # the request body bound is buffered; no upstream connection attached yet
    UPSTREAM: Final = 2  # the upstream connection's write buffer is full
    QUEUE: Final = 4  # pipelined requests wait for the one in flight
    HOOK: Final = 8  # a hooked route's body is buffered up to its bound; the hook has not asked
    HALT: Final = 16  # nothing more is read on this connection (upgrade, refused request)


class ReadGate:
    """The set of reasons a transport's reading is paused."""

    __slots__ = ("_on_resume", "reasons", "transport")

    def __init__(self, on_resume: Callable[[], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.reasons = 0
        self._on_resume = on_resume  # restarts the client's read clock (see ``sweep``)

    def pause(self, reason: int) -> None:
        if not self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self.reasons |= reason

    def resume(self, reason: int) -> None:
        if not self.reasons & reason:
            return
        self.reasons &= ~reason
        if not self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._on_resume()

    @property
    def paused(self) -> bool:
        return bool(self.reasons)
