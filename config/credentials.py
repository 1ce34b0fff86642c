"""Settings of the credentials feature: personal access tokens, API keys and service tokens
(``[tokens]`` in the TOML file, ``TOKENS_*`` in the environment).

The scope catalogue (names, descriptions, which roles may hold each) is its own TOML file
(``scopes_file``), read by the feature at start-up like the access rules; an empty setting
means the built-in catalogue of the seed guide's §6.3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from config.errors import ConfigError
from config.fields import setting

_PREFIX = re.compile(r"[a-z][a-z0-9]{1,15}_")
_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PATH = re.compile(r"/[A-Za-z0-9._~\-/]*")


@dataclass(frozen=True, slots=True)
class TokensSettings:
    enabled: bool = setting(True, "TOKENS_ENABLED", doc="issue and check tokens")
    pat_prefix: str = setting("pat_", "TOKENS_PAT_PREFIX", doc="personal access tokens")
    key_prefix: str = setting("key_", "TOKENS_KEY_PREFIX", doc="organisation API keys")
    svc_prefix: str = setting("svc_", "TOKENS_SVC_PREFIX", doc="service tokens")
    header: str = setting(
        "X-API-Key", "TOKENS_HEADER", doc="header a token may come in, besides Authorization"
    )
    sqlite_file: str = setting(
        "",
        "TOKENS_SQLITE_FILE",
        doc="embedded store without DATABASE_URL; empty = SPOOL_DIR/tokens.sqlite3",
    )
    database_schema: str = setting(
        "", "TOKENS_DATABASE_SCHEMA", doc="Postgres schema of the token tables; empty = default"
    )
    store_timeout: float = setting(2.0, "TOKENS_STORE_TIMEOUT", doc="seconds per store query")
    cache_ttl: float = setting(
        60.0, "TOKENS_CACHE_TTL", doc="seconds a validated token is trusted without the store"
    )
    cache_size: int = setting(10000, "TOKENS_CACHE_SIZE", doc="tokens kept in the process")
    negative_cache_ttl: float = setting(
        30.0, "TOKENS_NEGATIVE_CACHE_TTL", doc="seconds an unknown token is remembered"
    )
    negative_cache_size: int = setting(
        10000, "TOKENS_NEGATIVE_CACHE_SIZE", doc="unknown tokens remembered (bounded)"
    )
    failure_limit: int = setting(
        20, "TOKENS_FAILURE_LIMIT", doc="unknown tokens per client IP and window; 0 = off"
    )
    failure_window: float = setting(
        60.0, "TOKENS_FAILURE_WINDOW", doc="seconds of the per-IP failure window"
    )
    last_used_interval: float = setting(
        60.0, "TOKENS_LAST_USED_INTERVAL", doc="seconds between last_used_at writes of a token"
    )
    scopes_file: str = setting(
        "", "TOKENS_SCOPES_FILE", doc="TOML scope catalogue; empty = the built-in one"
    )
    page_path: str = setting(
        "/tokens", "TOKENS_PAGE_PATH", doc="token page and JSON API on the public listener"
    )
    expiry_presets: tuple[str, ...] = setting(
        ("7", "30", "90"), "TOKENS_EXPIRY_PRESETS", doc="days offered on the token page"
    )
    allow_never: bool = setting(False, "TOKENS_ALLOW_NEVER", doc="offer tokens that never expire")
    max_days: int = setting(366, "TOKENS_MAX_DAYS", doc="longest lifetime a user may choose")
    require_aal2: bool = setting(
        False, "TOKENS_REQUIRE_AAL2", doc="creating a token needs a second-factor session"
    )
    csrf_secret: str = setting(
        "", "TOKENS_CSRF_SECRET", secret=True, doc="key of the page's CSRF tokens (all replicas)"
    )
    admin_keys: tuple[str, ...] = setting(
        (), "TOKENS_ADMIN_KEYS", secret=True, doc="admin API credentials, comma-separated"
    )
    admin_key_header: str = setting(
        "X-Kratos-Hooks-Admin-Key", "TOKENS_ADMIN_KEY_HEADER", doc="header of the admin key"
    )
    leak_secrets: tuple[str, ...] = setting(
        (), "TOKENS_LEAK_SECRETS", secret=True, doc="leak-report shared secrets; empty = off"
    )
    expiry_warning_days: int = setting(
        7, "TOKENS_EXPIRY_WARNING_DAYS", doc="TOKEN_EXPIRING this many days before; 0 = off"
    )
    expiry_check_interval: float = setting(
        3600.0, "TOKENS_EXPIRY_CHECK_INTERVAL", doc="seconds between expiry passes"
    )
    revocation_poll: float = setting(
        0.5, "TOKENS_REVOCATION_POLL", doc="seconds between revocation polls (embedded store)"
    )

    def __post_init__(self) -> None:
        prefixes = {
            "TOKENS_PAT_PREFIX": self.pat_prefix,
            "TOKENS_KEY_PREFIX": self.key_prefix,
            "TOKENS_SVC_PREFIX": self.svc_prefix,
        }
        for env, prefix in prefixes.items():
            if not _PREFIX.fullmatch(prefix):
                raise ConfigError(
                    f"{env}={prefix!r}: expected 2-16 lower-case letters and digits and a "
                    "final '_', e.g. pat_"
                )
        values = list(prefixes.values())
        if any(a != b and (a.startswith(b) or b.startswith(a)) for a in values for b in values):
            raise ConfigError("TOKENS_*_PREFIX: no prefix may begin another one")
        if len(set(values)) != 3:
            raise ConfigError("TOKENS_*_PREFIX: the three prefixes must differ")
        if self.database_schema and not _SCHEMA.fullmatch(self.database_schema):
            raise ConfigError(
                f"TOKENS_DATABASE_SCHEMA={self.database_schema!r}: expected a plain SQL identifier"
            )
        if self.page_path and (not _PATH.fullmatch(self.page_path) or self.page_path == "/"):
            raise ConfigError(
                f"TOKENS_PAGE_PATH={self.page_path!r}: expected a path like /tokens (or empty)"
            )
        if self.page_path.endswith("/"):
            raise ConfigError(f"TOKENS_PAGE_PATH={self.page_path!r}: no trailing /")
        self._check_numbers()

    def _check_numbers(self) -> None:
        for item in self.expiry_presets:
            if not item.isdigit() or not 1 <= int(item) <= self.max_days:
                raise ConfigError(
                    f"TOKENS_EXPIRY_PRESETS={','.join(self.expiry_presets)}: expected days "
                    f"between 1 and TOKENS_MAX_DAYS ({self.max_days})"
                )
        if self.cache_size < 1 or self.negative_cache_size < 1:
            raise ConfigError("TOKENS_CACHE_SIZE and TOKENS_NEGATIVE_CACHE_SIZE must be >= 1")
        if self.failure_limit < 0 or self.failure_window <= 0:
            raise ConfigError("TOKENS_FAILURE_LIMIT must be >= 0, TOKENS_FAILURE_WINDOW > 0")
        if self.store_timeout <= 0 or self.revocation_poll <= 0 or self.max_days < 1:
            raise ConfigError(
                "TOKENS_STORE_TIMEOUT and TOKENS_REVOCATION_POLL must be > 0, TOKENS_MAX_DAYS >= 1"
            )
        if self.expiry_warning_days < 0 or self.expiry_check_interval <= 0:
            raise ConfigError(
                "TOKENS_EXPIRY_WARNING_DAYS must be >= 0, TOKENS_EXPIRY_CHECK_INTERVAL > 0"
            )

    @property
    def prefixes(self) -> dict[str, str]:
        """kind → prefix."""
        return {"pat": self.pat_prefix, "key": self.key_prefix, "svc": self.svc_prefix}
