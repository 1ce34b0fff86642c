"""The edge feature's app state."""

from __future__ import annotations

from aiohttp import web

from proxy.edge.forwarder import Forwarder

FORWARDER = web.AppKey("forwarder", Forwarder)
