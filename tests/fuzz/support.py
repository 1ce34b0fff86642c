"""The fuzzing profile and the bridge that lets a Hypothesis property drive the running
service.

Every fuzz test is derandomised (the same examples on every run) and database-less, with a
modest default number of examples so ``make test`` stays quick; ``FUZZ_EXAMPLES=5000`` runs
each property that many times instead (a longer hunt, still reproducible).

Properties over the real listeners are plain synchronous Hypothesis tests run in a worker
thread: each example hands its coroutine to the test's own event loop, which meanwhile serves
the service, the Kratos stand-in and the client, so shrinking works as for a pure function.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.metrics import metric_total

T = TypeVar("T")

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)

# The service's own code (a relay's jitter) draws from ``random`` on the loop thread while
# Hypothesis generates on its worker: Hypothesis sees the shared global state move and warns
# as if a strategy had used it. Nothing of the examples depends on it.
SHARED_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)


def profile(default: int) -> settings:
    """``default`` examples, or ``FUZZ_EXAMPLES`` when set; derandomised, no database."""
    return settings(
        max_examples=FUZZ_EXAMPLES or default,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )


async def fuzz_async(
    strategy: st.SearchStrategy[T], check: Callable[[T], Awaitable[None]], default: int
) -> int:
    """Run ``check`` on the loop for every example of ``strategy``; returns how many ran."""
    loop = asyncio.get_running_loop()
    ran = 0

    @profile(default)
    @given(strategy)
    def prop(value: T) -> None:
        nonlocal ran
        asyncio.run_coroutine_threadsafe(check(value), loop).result(timeout=60)  # type: ignore[arg-type]
        ran += 1

    await asyncio.to_thread(prop)
    return ran


def errors_logged(records: list[logging.LogRecord]) -> list[str]:
    """The ERROR (and worse) lines the service wrote, as text to show."""
    return [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR]


async def internal_errors(http: aiohttp.ClientSession, internal_url: str) -> float:
    """Answers of status 500 the service counted, on both listeners."""
    return await metric_total(http, internal_url, "kratos_hooks_http_requests_total", status="500")


def is_kratos_error(body: bytes, status: int) -> bool:
    """Kratos' ``errorGeneric`` shape: ``{"error": {"code": status, "status", "message", …}}``."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    error = document.get("error") if isinstance(document, dict) else None
    return (
        isinstance(error, dict)
        and error.get("code") == status
        and isinstance(error.get("status"), str)
        and isinstance(error.get("message"), str)
    )
