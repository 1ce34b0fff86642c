"""Kratos' public router: the cleaned, decoded path picks the handler (KRATOS.md, "How Kratos
reads a request") — ``//self-service/login`` and ``/self-service/%2e/login`` reach the login
handler, a trailing slash or case variant is redirected (301 for GET, 308 otherwise), an
unknown path is Go's plain-text 404. Decided by the Go oracle (``gostd.route``), so the
stand-in routes exactly as Kratos' own libraries do."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from . import gostd

# Kratos serves whoami on every method (session/handler.go registers it for each).
WHOAMI_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def go_text(status: int, text: str) -> web.Response:
    """Go's ``http.Error`` / httprouter defaults, not aiohttp's "404: Not Found"."""
    return web.Response(
        status=status,
        text=text + "\n",
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


def kratos_router(table: Mapping[str, Handler]) -> Handler:
    registered = frozenset(table)

    async def route(request: web.Request) -> web.StreamResponse:
        answer = gostd.route(request.method, request.raw_path, registered)
        if answer.kind == "handler" and answer.handler in table:
            return await table[answer.handler](request)
        if answer.kind == "redirect":
            return web.Response(status=answer.status, headers={"Location": answer.location})
        if answer.kind == "method_not_allowed":
            response = go_text(405, "Method Not Allowed")
            if answer.allow:
                response.headers["Allow"] = answer.allow
            return response
        if answer.kind == "bad_request":
            return go_text(400, "400 Bad Request")
        return go_text(404, "404 page not found")

    return route
