"""The compiled hot path (``proxy.native``): what is listed runs compiled, and the listed
modules keep to what mypyc compiles safely."""

from __future__ import annotations

import ast
import logging
import shutil
from pathlib import Path

import pytest

from proxy.native import MODULES, native_state
from proxy.server import announce_native

ROOT = Path(__file__).resolve().parents[2]


COMPILER = shutil.which("cc") is not None or shutil.which("gcc") is not None


def test_every_listed_module_runs_compiled_where_a_compiler_is() -> None:
    """``make`` built them (a failed mypyc build falls back to plain Python quietly but for a
    start-up warning: this is where CI notices); without a compiler, all are plain Python."""
    state = native_state()
    if COMPILER:
        assert state.interpreted == ()
        assert len(state.compiled) == len(MODULES)
    else:
        assert state.compiled == ()
        assert len(state.interpreted) == len(MODULES)
    assert state.stale == ()


def _awaits(nodes: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Await) for node in nodes for n in ast.walk(node))


def _reraises(nodes: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Raise) and n.exc is None for node in nodes for n in ast.walk(node))


@pytest.mark.parametrize("path", MODULES)
def test_no_await_while_an_exception_propagates(path: str) -> None:
    """A compiled coroutine that awaited inside an ``except`` block and then re-raised crashed
    the process (a guarded login whose Kratos was cut: a segmentation fault while the loop
    logged the exception). So in compiled modules: no bare ``raise`` after an ``await`` in an
    ``except`` block, no ``await`` in a ``finally`` block, and no ``async with`` / ``async for``
    (mypyc awaits ``__aexit__`` in its own exception handler, then re-raises)."""
    tree = ast.parse((ROOT / path).read_text(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and _awaits(node.body) and _reraises(node.body):
            found.append(f"line {node.lineno}: await, then raise, in an except block")
        elif isinstance(node, ast.Try) and _awaits(node.finalbody):
            found.append(f"line {node.lineno}: await in a finally block")
        elif isinstance(node, ast.AsyncWith | ast.AsyncFor):
            found.append(f"line {node.lineno}: {type(node).__name__}")
    assert not found, found


def test_start_up_says_whether_the_hot_path_is_compiled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="kratos_hooks")
    announce_native()
    said = [r for r in caplog.records if r.name.startswith("kratos_hooks")]
    if COMPILER:
        assert [(r.levelno, r.getMessage()) for r in said] == [
            (logging.INFO, "hot path compiled (mypyc)")
        ]
    else:
        assert [r.levelno for r in said] == [logging.WARNING]
        assert "runs as plain Python" in said[0].getMessage()
