"""Settings of the Kratos webhooks (``[hooks]`` in the TOML file, ``HOOKS_*`` in the environment).

Every platform-specific name (queue, event pattern, metadata keys, SQL, API path) is a setting
whose default is the platform's current value, so a rename on the platform side is a
configuration change here, not a release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from config.errors import ConfigError
from config.fields import setting
from config.redact import mask_url_credentials

DEFAULT_RESOLVE_QUERY = 'SELECT "id", "agentId" FROM "user" WHERE "authenticationID" = $1'
# A registering identity's traits are not verified yet: match only a platform user that no
# Kratos identity owns, never one bound to another (or a deleted) identity.
DEFAULT_RESOLVE_TRAIT_QUERY = (
    'SELECT "id", "agentId" FROM "user" WHERE "email" = $1 AND "authenticationID" IS NULL'
)
FailurePolicy = Literal["allow", "interrupt"]
HOOK_POINTS = frozenset({"login", "registration", "verification", "settings", "recovery"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TRAIT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")
_FIRST_PARAMETER = re.compile(r"\$1(?![0-9])")
_OTHER_PARAMETER = re.compile(r"\$(?:[02-9]|1[0-9])")


@dataclass(frozen=True, slots=True)
class HooksSettings:
    # --- authentication of Kratos' calls (web_hook ``auth``) --------------------------------
    api_keys: tuple[str, ...] = setting(
        (), "HOOKS_API_KEYS", secret=True, doc="accepted api_key values, comma-separated (rotation)"
    )
    api_key_header: str = setting(
        "X-Kratos-Hooks-Key", "HOOKS_API_KEY_HEADER", doc="header Kratos' api_key auth sends"
    )
    basic_auth: tuple[str, ...] = setting(
        (), "HOOKS_BASIC_AUTH", secret=True, doc="accepted user:password pairs, comma-separated"
    )
    insecure_no_auth: bool = setting(
        False, "HOOKS_INSECURE_NO_AUTH", doc="serve the hooks without authentication (dev only)"
    )
    max_body_size: int = setting(64 * 1024, "HOOKS_MAX_BODY_SIZE", doc="bytes per hook call")
    budget: float = setting(
        2.0, "HOOKS_BUDGET", doc="seconds a hook may hold Kratos; later work goes on behind"
    )

    # --- verification -> welcome event -------------------------------------------------------
    queue: str = setting("alkemio-notifications", "HOOKS_QUEUE", doc="durable queue (routing key)")
    welcome_pattern: str = setting("USER_SIGN_UP_WELCOME", "HOOKS_WELCOME_PATTERN")
    platform_url: str = setting(
        "http://localhost:3000", "HOOKS_PLATFORM_URL", doc="platform base URL put in the event"
    )
    once_retention: int = setting(
        90 * 24 * 3600, "HOOKS_ONCE_RETENTION", doc="seconds an identity's welcome is remembered"
    )
    publish_timeout: float = setting(
        1.5,
        "HOOKS_PUBLISH_TIMEOUT",
        doc="seconds the hook waits for the broker's confirm before answering queued",
    )
    confirm_timeout: float = setting(
        30.0,
        "HOOKS_CONFIRM_TIMEOUT",
        doc="seconds a late confirm is still awaited; then the connection is re-made and the "
        "event published again (the outcome is unknown)",
    )
    amqp_reconnect_interval: float = setting(5.0, "HOOKS_AMQP_RECONNECT_INTERVAL")
    token_leaked_pattern: str = setting(
        "TOKEN_LEAKED", "HOOKS_TOKEN_LEAKED_PATTERN", doc="event telling an owner of a leak"
    )
    token_expiring_pattern: str = setting(
        "TOKEN_EXPIRING", "HOOKS_TOKEN_EXPIRING_PATTERN", doc="event before a token expires"
    )

    # --- outbox and its relay ----------------------------------------------------------------
    outbox_table: str = setting(
        "kratos_hooks_outbox", "HOOKS_OUTBOX_TABLE", doc="Postgres outbox table (DATABASE_URL)"
    )
    relay_interval: float = setting(
        5.0, "HOOKS_RELAY_INTERVAL", doc="seconds between outbox scans when idle"
    )
    relay_max_backoff: float = setting(
        300.0, "HOOKS_RELAY_MAX_BACKOFF", doc="cap of the retry delay, seconds"
    )
    outbox_lease: float = setting(
        60.0,
        "HOOKS_OUTBOX_LEASE",
        doc="seconds an entry stays claimed by the replica publishing it (a crashed replica's "
        "entries are taken over after this); more than HOOKS_CONFIRM_TIMEOUT",
    )

    # --- identity resolution -> Kratos metadata ----------------------------------------------
    resolvers: tuple[str, ...] = setting(
        ("postgres", "api"), "HOOKS_RESOLVERS", doc="resolver chain, in order: postgres, api"
    )
    platform_database_url: str = setting(
        "", "HOOKS_PLATFORM_DATABASE_URL", secret=True, doc="platform DB; empty = resolver off"
    )
    resolve_query: str = setting(
        DEFAULT_RESOLVE_QUERY, "HOOKS_RESOLVE_QUERY", doc="$1 = identity id -> (user id, agent id)"
    )
    resolve_trait: str = setting(
        "",
        "HOOKS_RESOLVE_TRAIT",
        doc="trait (dotted path, e.g. email) resolving a not-yet-persisted identity; empty = off",
    )
    resolve_trait_query: str = setting(
        DEFAULT_RESOLVE_TRAIT_QUERY,
        "HOOKS_RESOLVE_TRAIT_QUERY",
        doc="$1 = the trait's value -> (user id, agent id)",
    )
    platform_api_url: str = setting(
        "", "HOOKS_PLATFORM_API_URL", doc="platform server base URL; empty = resolver off"
    )
    resolve_path: str = setting("/rest/internal/identity/resolve", "HOOKS_RESOLVE_PATH")
    metadata_user_key: str = setting("alkemio_actor_id", "HOOKS_METADATA_USER_KEY")
    metadata_agent_key: str = setting("alkemio_agent_id", "HOOKS_METADATA_AGENT_KEY")
    failure_policy: FailurePolicy = setting(
        "allow", "HOOKS_IDENTITY_FAILURE_POLICY", doc="allow (retry later) or interrupt"
    )
    failure_policy_by_point: tuple[str, ...] = setting(
        (), "HOOKS_IDENTITY_FAILURE_POLICY_BY_POINT", doc="overrides, e.g. registration=interrupt"
    )
    interrupt_message: str = setting(
        "Your account could not be prepared. Please try again in a moment.",
        "HOOKS_INTERRUPT_MESSAGE",
    )
    http_timeout: float = setting(
        1.0, "HOOKS_HTTP_TIMEOUT", doc="seconds per attempt (platform API, Kratos admin)"
    )
    http_attempts: int = setting(3, "HOOKS_HTTP_ATTEMPTS", doc="platform API attempts")
    db_timeout: float = setting(1.0, "HOOKS_DB_TIMEOUT", doc="seconds per resolver query")
    breaker_failures: int = setting(
        5, "HOOKS_BREAKER_FAILURES", doc="consecutive failures that open a breaker"
    )
    breaker_cooldown: float = setting(
        30.0, "HOOKS_BREAKER_COOLDOWN", doc="seconds before an open breaker lets a probe through"
    )

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.outbox_table):
            raise ConfigError(
                f"HOOKS_OUTBOX_TABLE={self.outbox_table!r}: expected a plain SQL identifier"
            )
        for item in self.failure_policy_by_point:
            point, _, policy = item.partition("=")
            if point.strip() not in HOOK_POINTS or policy.strip() not in ("allow", "interrupt"):
                raise ConfigError(
                    f"HOOKS_IDENTITY_FAILURE_POLICY_BY_POINT={item!r}: expected point=allow|"
                    f"interrupt with point one of {', '.join(sorted(HOOK_POINTS))}"
                )
        unknown = set(self.resolvers) - {"postgres", "api"}
        if unknown:
            raise ConfigError(
                f"HOOKS_RESOLVERS={','.join(self.resolvers)}: expected postgres and/or api"
            )
        self._check_resolution(ConfigError)
        for name in ("platform_url", "platform_api_url"):
            url: str = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                shown = mask_url_credentials(repr(url))
                raise ConfigError(f"HOOKS_{name.upper()}={shown}: expected an http(s):// URL")
        if self.max_body_size < 1024 or self.budget <= 0 or self.publish_timeout <= 0:
            raise ConfigError(
                "HOOKS_MAX_BODY_SIZE must be >= 1024, HOOKS_BUDGET and HOOKS_PUBLISH_TIMEOUT > 0"
            )
        if self.outbox_lease < self.confirm_timeout + 1 or self.confirm_timeout <= 0:
            raise ConfigError(
                f"HOOKS_OUTBOX_LEASE={self.outbox_lease:g}: must exceed HOOKS_CONFIRM_TIMEOUT="
                f"{self.confirm_timeout:g} (> 0) by at least a second, or a replica still "
                "waiting for a confirm would lose its claim"
            )
        if self.breaker_failures < 1 or self.http_attempts < 1:
            raise ConfigError("HOOKS_BREAKER_FAILURES and HOOKS_HTTP_ATTEMPTS must be >= 1")

    def _check_resolution(self, error: type[Exception]) -> None:
        for env, query in (
            ("HOOKS_RESOLVE_QUERY", self.resolve_query),
            ("HOOKS_RESOLVE_TRAIT_QUERY", self.resolve_trait_query),
        ):
            if not _FIRST_PARAMETER.search(query) or _OTHER_PARAMETER.search(query):
                raise error(f"{env}: expected a query with exactly one parameter, $1")
        if not self.resolve_trait:
            return
        if not _TRAIT_PATH.fullmatch(self.resolve_trait):
            raise error(
                f"HOOKS_RESOLVE_TRAIT={self.resolve_trait!r}: expected a trait name or dotted "
                "path, e.g. email"
            )
        if not self.platform_database_url:
            raise error(
                f"HOOKS_RESOLVE_TRAIT={self.resolve_trait}: needs HOOKS_PLATFORM_DATABASE_URL "
                "(the trait is looked up with HOOKS_RESOLVE_TRAIT_QUERY)"
            )
