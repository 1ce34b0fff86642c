"""asyncpg pools for every feature that talks to Postgres (the hooks' outbox and resolver, the
credentials store).

asyncpg reads files on every new connection when the URL leaves things implicit: the
``~/.pgpass`` file when no password is given, client certificates under ``~/.postgresql``
for the default ``sslmode=prefer``. That is blocking I/O in the event loop, so both are made
explicit here: the password comes from the URL or ``PGPASSWORD``, and without an ``sslmode``
(URL or ``PGSSLMODE``) TLS is off — ``prefer`` never verified the server anyway, so it gave
no protection against an active attacker. Ask for ``sslmode=require`` or stronger in the URL.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg


def connect_options(dsn: str) -> dict[str, Any]:
    """Keyword arguments that keep asyncpg from touching the disk (pure)."""
    parts = urlsplit(dsn)
    options: dict[str, Any] = {"password": parts.password or os.environ.get("PGPASSWORD", "")}
    if "sslmode" not in parse_qs(parts.query) and not os.environ.get("PGSSLMODE"):
        options["ssl"] = False
    return options


async def create_pool(dsn: str, *, timeout: float, max_size: int = 5, schema: str = "") -> Any:
    """A pool of ``dsn``; ``schema`` first on each connection's ``search_path`` when given."""
    settings = {"search_path": schema} if schema else None
    return await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=timeout,
        server_settings=settings,
        **connect_options(dsn),
    )


async def bounded(pool: Any, method: str, sql: str, *args: Any, timeout: float) -> Any:
    """``pool.<method>(sql, *args)`` with ``timeout`` bounding every wait: for a free
    connection, for the query, and for the reset of the connection on its way back.

    asyncpg's own ``pool.fetch…`` bound the query only: against a stalled database a caller
    waited without limit for a connection, or for a timed-out one to be reset (found by the
    chaos run: the verification hook hung past HOOKS_BUDGET, token checks past
    TOKENS_STORE_TIMEOUT). The release uses the acquire's timeout.
    """
    async with pool.acquire(timeout=timeout) as conn:
        return await getattr(conn, method)(sql, *args, timeout=timeout)


async def connect(dsn: str, *, timeout: float, schema: str = "") -> Any:
    """One connection of ``dsn`` outside a pool (a ``LISTEN`` holds its connection)."""
    settings = {"search_path": schema} if schema else None
    return await asyncpg.connect(
        dsn, timeout=timeout, server_settings=settings, **connect_options(dsn)
    )
