"""A fault-injecting TCP relay put between the code under test and a real service.

Outages are simulated by cutting the relay, never by stopping the shared server:
``cut()`` drops every open connection and refuses new ones; ``hang()`` drops them too, then
accepts new ones but never forwards a byte (a black hole, for timeouts); ``stall()`` keeps
every open connection open and accepts new ones, but swallows whatever either side sends
(a peer that takes the TCP connection and never answers); ``restore()`` goes back to
relaying — after ``stall()`` it first drops the stalled connections, as what went into the
black hole is gone and their byte streams cannot resume.

``pause()`` is the other kind of stall, the one a RabbitMQ memory or disk alarm causes: every
connection stays open and new ones are accepted, but no byte moves — each side's bytes are
*held*, not lost (the relay stops reading, so TCP back-pressure keeps the rest in the
kernels' buffers) — until ``resume()`` lets everything flow again, in order. ``pause(up=False)``
or ``pause(down=False)`` holds one direction only (``up`` is client to server): with
``down`` alone the server gets every request and the answers wait. ``cut()`` during a pause
drops the connections with whatever they held.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["pass", "cut", "hang", "stall"]
Direction = Literal["up", "down"]


class FaultyRelay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        # Open gate = bytes flow that way; a closed one holds them (pause / resume).
        self._gates: dict[Direction, asyncio.Event] = {
            "up": asyncio.Event(),
            "down": asyncio.Event(),
        }
        for gate in self._gates.values():
            gate.set()
        self.port = 0

    async def start(self) -> FaultyRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, scheme: str, suffix: str = "", userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{at}127.0.0.1:{self.port}{suffix}"

    def cut(self) -> None:
        self.mode = "cut"
        self._drop_all()

    def hang(self) -> None:
        self.mode = "hang"
        self._drop_all()

    def stall(self) -> None:
        self.mode = "stall"

    def restore(self) -> None:
        if self.mode == "stall":
            self._drop_all()
        self.mode = "pass"
        self.resume()

    def pause(self, *, up: bool = True, down: bool = True) -> None:
        if up:
            self._gates["up"].clear()
        if down:
            self._gates["down"].clear()

    def resume(self) -> None:
        for gate in self._gates.values():
            gate.set()

    @property
    def paused(self) -> bool:
        return not all(gate.is_set() for gate in self._gates.values())

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self.mode == "cut":
            writer.transport.abort()
            return
        self._writers.add(writer)
        if self.mode in ("hang", "stall"):
            with contextlib.suppress(Exception):
                await reader.read()  # until the client gives up
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer, "up"),
            self._pipe(up_reader, writer, "down"),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        gate = self._gates[direction]
        try:
            while data := await reader.read(65536):
                if self.mode == "stall":
                    continue  # swallowed: the connection stays open, silent
                if not gate.is_set():
                    await gate.wait()  # held: nothing more is read, nothing is lost
                if self.mode != "pass" or writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort() if self.mode != "pass" else writer.close()
            self._writers.discard(writer)

    async def close(self) -> None:
        self._drop_all()
        self.resume()  # lets held pipes see their aborted peers and end
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._tasks:  # each connection's pipes end on their aborted sockets
            await asyncio.wait(list(self._tasks), timeout=1.0)
