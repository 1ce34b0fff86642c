"""Reading one cookie out of ``Cookie`` headers, the same way everywhere: the decisions key
their session cache by the value this returns and the logout watch purges by it, so they
must agree byte for byte."""

from __future__ import annotations

from collections.abc import Iterable


def cookie_value(cookie_headers: Iterable[str], name: str) -> str | None:
    """The first cookie called ``name``; lenient, as Go's ``Request.Cookie`` is (one bad
    pair spoils nothing)."""
    for header in cookie_headers:
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key.strip() == name:
                value = value.strip().strip('"')
                return value or None
    return None
