"""Running the service as a real process (``python -m proxy serve``), for tests that need a
separate memory footprint, signals, or several worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    def __init__(
        self, env: dict[str, str], args: tuple[str, ...] = (), log_file: Path | None = None
    ) -> None:
        self.public_port = free_port()
        self.internal_port = free_port()
        self.env = {
            **os.environ,
            "PUBLIC_LISTEN": f"127.0.0.1:{self.public_port}",
            "INTERNAL_LISTEN": f"127.0.0.1:{self.internal_port}",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        self.args = args
        # A long run logs more than a pipe holds: nobody reading it would stall the service.
        self.log_file = log_file
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 20) -> ServiceProcess:
        log = self.log_file.open("ab") if self.log_file else None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy",
            "serve",
            *self.args,
            env=self.env,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log if log is not None else asyncio.subprocess.PIPE,
        )
        if log is not None:
            log.close()  # the child holds its own copy
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"service exited with {self.proc.returncode}")
                try:
                    async with http.get(self.internal_url + "/health/alive") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("service did not come up")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of ``pid`` (``VmHWM`` for the peak) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)
