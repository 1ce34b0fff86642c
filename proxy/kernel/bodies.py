"""Reading a request body whole, but never more than a bound."""

from __future__ import annotations

from aiohttp import web

from proxy.kernel.errors import BodyTooLarge

# Small bodies the proxy reads itself (logout, hooks) stay far below this; larger ones are
# streamed and never read whole.
SMALL_BODY = 64 * 1024


async def read_bounded(request: web.Request, limit: int, what: str = "The request body") -> bytes:
    """The body, refused early on Content-Length and counted when there is none (chunked)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"{what} exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"{what} exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
