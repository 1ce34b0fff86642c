"""``/metrics`` in Prometheus' text format (prometheus-async's aiohttp handler)."""

from __future__ import annotations

from aiohttp import web
from prometheus_async.aio import web as prometheus_web

from proxy.keys import ROUTE


async def metrics(request: web.Request) -> web.Response:
    request[ROUTE] = "metrics"
    return await prometheus_web.server_stats(request)
