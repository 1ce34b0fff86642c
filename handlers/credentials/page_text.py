"""What the token page says and what it accepts: pure functions.

Dates are shown in UTC (the page has no idea of the reader's zone and must not guess);
"2 hours ago" is rounded down, days left to the nearest day. A creation form is read
into a ``Creation`` or a list of problems, each naming the field, shown beside it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

DAY = 86400
MAX_NAME = 80
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def day(ts: float | None) -> str:
    if ts is None:
        return "Never"
    moment = datetime.fromtimestamp(ts, UTC)
    return f"{moment:%b} {moment.day}, {moment.year}"


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(now - ts))
    for unit, size in (("day", DAY), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def expiry(ts: float | None, now: float) -> str:
    """``Mar 1, 2024 (47 days)``, ``Never``, ``Expired on …``."""
    if ts is None:
        return "Never"
    if ts <= now:
        return f"Expired on {day(ts)}"
    days = round((ts - now) / DAY)  # a 30-day token made a moment ago has 30 days left
    left = "less than a day" if days == 0 else f"{days} day{'s' if days != 1 else ''}"
    return f"{day(ts)} ({left})"


def form_fields(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def first(fields: Mapping[str, list[str]], name: str) -> str:
    values = fields.get(name) or [""]
    return values[0]


@dataclass(frozen=True, slots=True)
class Creation:
    name: str
    scopes: tuple[str, ...]
    expires_at: float | None


def clean_name(raw: str) -> str:
    return _CONTROL.sub("", raw).strip()[:MAX_NAME]


def expires_from(
    choice: str, date: str, *, presets: Sequence[str], allow_never: bool, max_days: int, now: float
) -> float | str | None:
    """The expiry a form (or JSON call) chose, or the problem with it (a string)."""
    if choice == "never":
        return None if allow_never else "Tokens must expire."
    if choice in presets:
        return now + int(choice) * DAY
    if choice == "date":
        if not _DATE.fullmatch(date):
            return "Pick a date (YYYY-MM-DD)."
        try:
            chosen = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC).timestamp() + DAY
        except ValueError:
            return "Pick a valid date."
        if chosen <= now:
            return "Pick a date in the future."
        if chosen - now > max_days * DAY:
            return f"Pick a date within {max_days} days."
        return chosen
    return "Choose when the token expires."


def creation(
    name: str,
    scopes: Sequence[str],
    expires: float | str | None,
    offered: Sequence[str],
) -> Creation | dict[str, str]:
    """A valid creation, or the problems by field."""
    problems: dict[str, str] = {}
    cleaned = clean_name(name)
    if not cleaned:
        problems["name"] = "Give the token a name."
    chosen = tuple(sorted(set(scopes)))
    if not chosen:
        problems["scopes"] = "Choose at least one scope."
    elif any(scope not in offered for scope in chosen):
        problems["scopes"] = "Choose scopes from the list."
    if isinstance(expires, str):
        problems["expiry"] = expires
    if problems:
        return problems
    assert not isinstance(expires, str)
    return Creation(cleaned, chosen, expires)


def now() -> float:
    return time.time()


def iso_day(ts: float) -> str:
    """``YYYY-MM-DD`` (UTC), for a date input's bounds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
