"""Running the hooks' CLI commands from async tests (in a thread: they own their loop)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io

from config import load_settings
from handlers.hooks import cli as hooks_cli


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kratos-hooks")
    commands = parser.add_subparsers(dest="command", required=True)
    hooks_cli.add_commands(commands)
    return parser.parse_args(argv)


async def run_cli(argv: list[str], **env: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``kratos-hooks <argv>`` with settings from ``env``."""
    settings = load_settings(env={"LOG_FORMAT": "console", **env})
    out, err = io.StringIO(), io.StringIO()

    def call() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return hooks_cli.run(parse(argv), settings)

    code = await asyncio.to_thread(call)
    return code, out.getvalue(), err.getvalue()
