"""``/metrics`` in Prometheus' text format.

Rendering reads /proc for the process collector, so it runs in the default executor rather
than stalling the event loop that carries the proxy's traffic.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from proxy.kernel.kernel_keys import ROUTE


async def metrics(request: web.Request) -> web.Response:
    request[ROUTE] = "metrics"
    body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
