"""Build script. The metadata is in ``setup.cfg``; this adds the compiled hot path.

The modules listed in ``proxy/native.py`` are compiled to C extensions with mypyc (a part of
mypy, the project's type checker) when the package is built. Each extension is optional: where
no C compiler is at hand the build goes on and the same modules run as plain Python (the
service says which at start-up). ``KRATOS_HOOKS_PURE_PYTHON=1`` skips the compilation.

mypyc type-checks the modules with the project's own mypy settings (``setup.cfg``, strict), so
it needs the service's dependencies installed: ``make`` installs them first, then builds with
``--no-build-isolation``. In an isolated build (a plain ``pip install .``) they are missing,
mypy refuses, and the modules stay plain Python: compiled against guessed (``Any``) types, a
class deriving from a dependency's class would be laid out wrong and crash.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

from setuptools import setup

HERE = Path(__file__).resolve().parent


def native_modules() -> list[str]:
    """``proxy.native.MODULES``, read without importing the package."""
    tree = ast.parse((HERE / "proxy" / "native.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise SystemExit("setup.py: proxy/native.py has no MODULES")


# The commands that only read the metadata (pip asks for it before it builds): no compiling.
METADATA_ONLY = {"egg_info", "dist_info", "sdist", "--name", "--version"}


def extensions() -> list[Any]:
    if os.environ.get("KRATOS_HOOKS_PURE_PYTHON", "") not in ("", "0"):
        return []
    if METADATA_ONLY.intersection(sys.argv[1:]):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("setup.py: mypyc is not installed; the hot path stays plain Python")
        return []
    os.chdir(HERE)  # mypyc takes paths relative to the project root; setup.cfg's [mypy]
    try:
        built = mypycify(native_modules(), group_name="proxy.native", opt_level="3")
    except (Exception, SystemExit) as exc:  # mypy or mypyc refused: build plain Python
        print(f"setup.py: mypyc failed ({exc!r}); the hot path stays plain Python")
        return []
    for extension in built:
        extension.optional = True  # no compiler: plain Python, not a failed install
    return built


setup(ext_modules=extensions())
