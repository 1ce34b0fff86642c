"""Route classes: bounded metric labels for the paths of Kratos' public API."""

from __future__ import annotations

_PREFIXES = (
    ("/self-service/login", "login"),
    ("/self-service/registration", "registration"),
    ("/self-service/recovery", "recovery"),
    ("/self-service/verification", "verification"),
    ("/self-service/settings", "settings"),
    ("/self-service/logout", "logout"),
    ("/self-service/errors", "errors"),
    ("/self-service/methods", "methods"),
    ("/sessions", "sessions"),
    ("/health", "health"),
    ("/.well-known", "well_known"),
    ("/schemas", "schemas"),
)


def route_class(path: str) -> str:
    """The label for a public-API path (already stripped of the configured prefix)."""
    for prefix, label in _PREFIXES:
        if path.startswith(prefix):
            return label
    return "other"
