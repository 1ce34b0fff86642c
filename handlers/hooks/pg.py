"""asyncpg pools for the hooks (the outbox and the platform-database resolver).

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


async def create_pool(dsn: str, *, timeout: float, max_size: int = 5) -> Any:
    return await asyncpg.create_pool(
        dsn, min_size=0, max_size=max_size, timeout=timeout, **connect_options(dsn)
    )
