"""The health feature: ``/health/alive``, ``/health/ready`` and ``/metrics``.

``/health/alive`` answers while the event loop runs; ``/health/ready`` reports the
``kernel.health.Health`` registry (200 while listening and not draining, each dependency's
state in the body). ``/metrics`` renders Prometheus' text format (OpenMetrics when the
scraper asks for it) in the default executor: the process collector reads /proc, which must
not stall the event loop that carries the proxy's traffic. (``prometheus-async``'s aiohttp
exporter renders in the loop, so it is not used.)
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from proxy.kernel.health_registry import Health
from proxy.kernel.kernel_keys import HEALTH, ROUTE


async def alive(request: web.Request) -> web.Response:
    request[ROUTE] = "health"
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    request[ROUTE] = "health"
    status, body = await request.app[HEALTH].report()
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    request[ROUTE] = "metrics"
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = await asyncio.get_running_loop().run_in_executor(None, encode, REGISTRY)
    return web.Response(body=body, headers={"Content-Type": content_type})


def install_health(app: web.Application, health: Health) -> None:
    app[HEALTH] = health
    app.router.add_get("/health/alive", alive)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
