"""Settings of the decisions endpoint (ForwardAuth / auth_request / forward_auth).

The access rules themselves live in their own TOML file (``rules_file``) because they change
far more often than the process settings and are hot-reloaded; these are the knobs around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.errors import ConfigError
from config.fields import setting


@dataclass(frozen=True, slots=True)
class DecisionsSettings:
    rules_file: str = setting(
        "", "DECISIONS_RULES_FILE", doc="TOML access rules; empty = every request denied"
    )
    no_match_status: int = setting(
        404, "DECISIONS_NO_MATCH_STATUS", doc="status when no rule matches (401, 403 or 404)"
    )
    login_url: str = setting(
        "/self-service/login/browser",
        "DECISIONS_LOGIN_URL",
        doc="where browsers sign in; a path is made absolute against the original request",
    )
    error_style: Literal["auto", "nginx"] = setting(
        "auto", "DECISIONS_ERROR_STYLE", doc="nginx = answer only 401/403 (auth_request)"
    )
    cache_ttl: float = setting(
        60.0, "DECISIONS_CACHE_TTL", doc="seconds a valid session is trusted without Kratos"
    )
    negative_cache_ttl: float = setting(
        5.0, "DECISIONS_NEGATIVE_CACHE_TTL", doc="seconds an invalid credential is remembered"
    )
    cache_size: int = setting(
        10000, "DECISIONS_CACHE_SIZE", doc="sessions kept in the in-process cache"
    )
    whoami_timeout: float = setting(
        3.0, "DECISIONS_WHOAMI_TIMEOUT", doc="seconds before Kratos counts as down (503)"
    )
    reload_interval: float = setting(
        2.0, "DECISIONS_RELOAD_INTERVAL", doc="seconds between rules-file checks; 0 = SIGHUP only"
    )
    roles_path: str = setting(
        "roles", "DECISIONS_ROLES_PATH", doc="dotted path of the roles list in metadata_public"
    )

    def __post_init__(self) -> None:
        if self.no_match_status not in {401, 403, 404}:
            raise ConfigError(
                f"DECISIONS_NO_MATCH_STATUS={self.no_match_status}: expected 401, 403 or 404"
            )
        if not self.login_url.startswith(("/", "http://", "https://")):
            raise ConfigError(
                f"DECISIONS_LOGIN_URL={self.login_url!r}: expected an absolute URL or a /path"
            )
        if self.cache_size < 1:
            raise ConfigError(f"DECISIONS_CACHE_SIZE={self.cache_size}: expected >= 1")
        if self.whoami_timeout <= 0:
            raise ConfigError(f"DECISIONS_WHOAMI_TIMEOUT={self.whoami_timeout}: expected > 0")
