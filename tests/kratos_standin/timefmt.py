"""Timestamps the way Go's encoding/json writes time.Time (RFC 3339, trailing zeros trimmed)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def http_date(moment: datetime) -> str:
    """Go's http.TimeFormat, used in cookie Expires attributes."""
    return moment.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
