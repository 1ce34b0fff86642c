"""The modules compiled to C by mypyc, and whether this process runs them compiled.

The public listener's per-request Python — the wire data path, its access log and metrics, the
login guard's hot path — is compiled by mypyc when the package is built (``setup.py``; ``make``
does it) and a C compiler is there. The compiled modules are the same source, type-checked by
mypy strict, with the same behaviour; they cost about a third less CPU per proxied request
(README, "Performance"). Without a compiler the same modules run as plain Python, and the
service says so at start-up.

``MODULES`` is read by ``setup.py`` without importing the package: keep it a literal tuple.
"""

from __future__ import annotations

import importlib
import importlib.machinery
from dataclasses import dataclass
from pathlib import Path

MODULES = (
    "proxy/edge/wire/clock.py",
    "proxy/edge/wire/flow.py",
    "proxy/edge/wire/heads.py",
    "proxy/edge/wire/limits.py",
    "proxy/edge/wire/upstream.py",
    "proxy/edge/wire/exchange.py",
    "proxy/edge/wire/client.py",
    "proxy/edge/wire/observe.py",
    "proxy/edge/wire/listener.py",
    "proxy/edge/wire/hooks.py",
    "proxy/kernel/access_log.py",
    "proxy/kernel/fast_metrics.py",
    "proxy/kernel/request_ids.py",
    "proxy/kernel/canonical.py",
    "proxy/kernel/view.py",
    "proxy/kernel/hooked.py",
    "proxy/kernel/client_ip.py",
    "proxy/kernel/middleware.py",
    "proxy/kernel/digests.py",
    "proxy/kernel/redis_pipe.py",
    "proxy/guard/login_hooks.py",
    "proxy/guard/core.py",
    "proxy/guard/classify.py",
    "proxy/guard/naming.py",
    "proxy/guard/identity.py",
    "proxy/guard/policy.py",
    "proxy/guard/flows.py",
    "proxy/kernel/sessions/cache.py",
    "proxy/kernel/sessions/whoami.py",
    "handlers/decisions/endpoint.py",
    "handlers/decisions/request.py",
    "handlers/decisions/authenticators.py",
    "handlers/decisions/authorizers.py",
    "handlers/decisions/rules.py",
    "handlers/decisions/identity_headers.py",
    "handlers/decisions/subject.py",
    "handlers/decisions/paths.py",
    "handlers/decisions/deny.py",
)

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)


@dataclass(frozen=True, slots=True)
class NativeState:
    compiled: tuple[str, ...]  # module names running as C extensions
    interpreted: tuple[str, ...]  # listed, but running as plain Python
    stale: tuple[str, ...]  # compiled from an older source than the one beside it


def _name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def native_state() -> NativeState:
    """Which of ``MODULES`` this process runs compiled (imports them)."""
    compiled: list[str] = []
    interpreted: list[str] = []
    stale: list[str] = []
    for path in MODULES:
        name = _name(path)
        module = importlib.import_module(name)
        location = Path(getattr(module, "__file__", None) or "")
        if not location.name.endswith(_EXTENSIONS):
            interpreted.append(name)
            continue
        compiled.append(name)
        source = location.with_name(location.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > location.stat().st_mtime:
            stale.append(name)
    return NativeState(tuple(compiled), tuple(interpreted), tuple(stale))
