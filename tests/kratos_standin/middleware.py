"""Middlewares both apps share: the call recorder and the error renderer."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from .errors import KratosError, error_response
from .keys import APP_NAME_KEY, STATE_KEY
from .router import go_text
from .state import AppName, RecordedRequest


@web.middleware
async def record_calls(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Tests assert on exactly what reached "Kratos", so record before anything can fail.
    state = request.app[STATE_KEY]
    name: AppName = "admin" if request.app[APP_NAME_KEY] == "admin" else "public"
    body = await request.read()
    state.record(
        RecordedRequest(
            method=request.method,
            path_qs=request.path_qs,
            headers=CIMultiDict(request.headers),
            body=body,
            app=name,
        )
    )
    return await handler(request)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KratosError as error:
        return error_response(request, error)
    except web.HTTPNotFound:
        return go_text(404, "404 page not found")
    except web.HTTPMethodNotAllowed as exc:
        response = go_text(405, "Method Not Allowed")
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
