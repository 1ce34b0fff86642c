"""Child processes of a benchmark: started, awaited until ready, and always stopped.

Every child is registered with a ``Supervisor`` (a context manager); leaving it — normally,
by exception, by Ctrl-C or by SIGTERM (turned into ``SystemExit`` by ``exit_on_sigterm``) —
stops every child: SIGTERM, a short grace, then SIGKILL. On Linux the children also get
PR_SET_PDEATHSIG so that even a SIGKILLed benchmark cannot leave servers behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
_PR_SET_PDEATHSIG = 1


class BenchError(RuntimeError):
    """The benchmark cannot produce a meaningful figure (a server failed, requests failed)."""


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)

    def set_pdeathsig() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return set_pdeathsig


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind the stack like Ctrl-C does, so ``finally`` blocks stop children."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def free_port() -> int:
    """A currently unused loopback port (the tiny race until the child binds is acceptable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """One supervised process with its combined output in a log file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def ensure_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with code {code}:\n{self.log_tail()}")


class Supervisor:
    """Starts children and stops all of them when the ``with`` block is left."""

    def __init__(self, workdir: Path, grace: float = 5.0) -> None:
        self._workdir = workdir
        self._grace = grace
        self._children: list[Child] = []

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Child:
        log_path = self._workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                preexec_fn=_die_with_parent(),
            )
        child = Child(name, popen, log_path)
        self._children.append(child)
        return child

    def ensure_all_running(self) -> None:
        """Fail when any child died: its figures would be meaningless."""
        for child in self._children:
            child.ensure_running()

    def stop_all(self) -> None:
        # Signal everyone first so the grace periods overlap instead of adding up.
        for child in self._children:
            if child.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        for child in self._children:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        self._children.clear()


def wait_http_ok(child: Child, url: str, timeout: float = 20.0) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``child`` dies meanwhile."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while time.monotonic() < deadline:
        child.ensure_running()
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if 200 <= response.status < 300:
                    return
                last_error = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last_error = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{child.name} not ready at {url}: {last_error}\n{child.log_tail()}")


def venv_python() -> str:
    """The project's virtualenv interpreter, or the running one when there is no venv."""
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


_INHERITED = frozenset({"PATH", "HOME", "USER", "LANG", "TZ", "TMPDIR"})


def clean_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """A minimal environment plus ``overrides``: no setting leaks in from the caller's shell
    (a stray PUBLIC_PATH_PREFIX or KRATOS_HOOKS_CONFIG would change what is measured)."""
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    env.update(overrides)
    return env


def freeze_heap() -> None:
    """For a Python peer of the benchmark (a stand-in, the load generator): what exists now is
    moved out of the collector's reach, so its own full collections (20-30 ms over the Kratos
    spec a stand-in loads) stop landing on whichever target is being measured — as
    kratos-hooks freezes its own start-up heap."""
    gc.collect()
    gc.freeze()
