"""Set-Cookie values in the attribute order Go's net/http writes them."""

from __future__ import annotations

from datetime import datetime

from .timefmt import http_date

_EPOCH_PLUS_ONE = "Thu, 01 Jan 1970 00:00:01 GMT"


def set_cookie(
    name: str,
    value: str,
    *,
    expires: datetime | None = None,
    max_age: int | None = None,
) -> str:
    parts = [f"{name}={value}", "Path=/"]
    if expires is not None:
        parts.append(f"Expires={http_date(expires)}")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    parts += ["HttpOnly", "SameSite=Lax"]
    return "; ".join(parts)


def clear_cookie(name: str) -> str:
    """gorilla/sessions deletes with MaxAge=-1, which Go writes as this."""
    return f"{name}=; Path=/; Expires={_EPOCH_PLUS_ONE}; Max-Age=0; HttpOnly; SameSite=Lax"
