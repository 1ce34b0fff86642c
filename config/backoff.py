"""Settings of the login guard (``[backoff]`` in the TOML file).

Each bucket has four knobs: ``free`` failures cost nothing; from then on every failure sets a
wait of ``base * 2^(failures - free)`` seconds, capped at ``max``; the bucket is forgotten
``window`` seconds after its last failure. With the defaults one account cannot see more than
about 75 failed attempts an hour reach Kratos however many addresses the attacker rotates
through (ASVS V2.2.1 asks for at most 100), while ten typos in a row cost a real user nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from config.errors import ConfigError
from config.fields import setting


@dataclass(frozen=True, slots=True)
class BackoffSettings:
    enabled: bool = setting(True, "BACKOFF_ENABLED", doc="guard POST /self-service/login")
    secret: str = setting(
        "",
        "BACKOFF_SECRET",
        secret=True,
        doc="HMAC key for bucket names; empty = random per process (not shared: set it)",
    )
    methods: tuple[str, ...] = setting(
        ("password",), "BACKOFF_METHODS", doc="login methods whose submissions are attempts"
    )
    max_body: int = setting(64 * 1024, "BACKOFF_MAX_BODY", doc="bytes read from a submission")
    failure_message_ids: tuple[str, ...] = setting(
        ("4000006", "4000008", "4000016"),
        "BACKOFF_FAILURE_MESSAGE_IDS",
        doc="Kratos message ids that mean 'credentials rejected'",
    )

    identifier_free: int = setting(10, "BACKOFF_IDENTIFIER_FREE")
    identifier_base: float = setting(1.0, "BACKOFF_IDENTIFIER_BASE")
    identifier_max: float = setting(60.0, "BACKOFF_IDENTIFIER_MAX")
    identifier_window: float = setting(3600.0, "BACKOFF_IDENTIFIER_WINDOW")
    ip_free: int = setting(50, "BACKOFF_IP_FREE")
    ip_base: float = setting(1.0, "BACKOFF_IP_BASE")
    ip_max: float = setting(30.0, "BACKOFF_IP_MAX")
    ip_window: float = setting(3600.0, "BACKOFF_IP_WINDOW")
    pair_free: int = setting(5, "BACKOFF_PAIR_FREE")
    pair_base: float = setting(2.0, "BACKOFF_PAIR_BASE")
    pair_max: float = setting(300.0, "BACKOFF_PAIR_MAX")
    pair_window: float = setting(3600.0, "BACKOFF_PAIR_WINDOW")
    reservation_ttl: float = setting(
        60.0,
        "BACKOFF_RESERVATION_TTL",
        doc="seconds an attempt in flight holds its place (a crash frees it after this)",
    )

    fail_closed: bool = setting(
        False, "BACKOFF_FAIL_CLOSED", doc="Redis down: 503 instead of the in-process limiter"
    )
    fallback_max_keys: int = setting(
        10_000, "BACKOFF_FALLBACK_MAX_KEYS", doc="buckets the in-process limiter keeps"
    )
    always_429: bool = setting(
        False, "BACKOFF_ALWAYS_429", doc="answer blocked JSON callers 429 instead of 400 + flow"
    )
    browser_mode: Literal["flow", "legacy"] = setting(
        "flow", "BACKOFF_BROWSER_MODE", doc="flow: 303 to the login UI; legacy: 303 to a URL"
    )
    login_ui_url: str = setting(
        "", "BACKOFF_LOGIN_UI_URL", doc="Kratos' login ui_url; empty = learned from Kratos"
    )
    registration_ui_url: str = setting(
        "", "BACKOFF_REGISTRATION_UI_URL", doc="registration ui_url; empty = learned from Kratos"
    )
    recovery_ui_url: str = setting(
        "", "BACKOFF_RECOVERY_UI_URL", doc="recovery ui_url; empty = learned from Kratos"
    )
    verification_ui_url: str = setting(
        "", "BACKOFF_VERIFICATION_UI_URL", doc="verification ui_url; empty = learned from Kratos"
    )
    legacy_redirect_url: str = setting(
        "", "BACKOFF_LEGACY_REDIRECT_URL", doc="target of ?lockout=true&retry_after=N"
    )
    message_id: int = setting(4000901, "BACKOFF_MESSAGE_ID", doc="ui.messages id of a lockout")

    rate_window: float = setting(60.0, "RATE_LIMIT_WINDOW", doc="seconds of a plain window")
    rate_login: int = setting(10, "RATE_LIMIT_LOGIN", doc="login posts per IP and window; 0=off")
    rate_registration: int = setting(5, "RATE_LIMIT_REGISTRATION")
    rate_recovery: int = setting(5, "RATE_LIMIT_RECOVERY")
    rate_verification: int = setting(5, "RATE_LIMIT_VERIFICATION")

    def ui_urls(self) -> dict[str, str]:
        """The configured UI of each self-service flow kind (those left empty are learned)."""
        urls = {
            "login": self.login_ui_url,
            "registration": self.registration_ui_url,
            "recovery": self.recovery_ui_url,
            "verification": self.verification_ui_url,
        }
        return {kind: url for kind, url in urls.items() if url}

    def __post_init__(self) -> None:
        for bucket in ("identifier", "ip", "pair"):
            free = getattr(self, f"{bucket}_free")
            base = getattr(self, f"{bucket}_base")
            cap = getattr(self, f"{bucket}_max")
            window = getattr(self, f"{bucket}_window")
            name = f"BACKOFF_{bucket.upper()}"
            if free < 0:
                raise ConfigError(f"{name}_FREE={free}: expected an integer >= 0")
            if base <= 0 or cap < base:
                raise ConfigError(f"{name}_MAX={cap}: expected >= {name}_BASE={base} > 0")
            if window < cap:
                raise ConfigError(f"{name}_WINDOW={window}: expected >= {name}_MAX={cap}")
        if not all(i.isdigit() for i in self.failure_message_ids):
            raise ConfigError(
                f"BACKOFF_FAILURE_MESSAGE_IDS={','.join(self.failure_message_ids)}: "
                "expected comma-separated message ids"
            )
        if self.max_body < 1024:
            raise ConfigError(f"BACKOFF_MAX_BODY={self.max_body}: expected >= 1024")
        if self.browser_mode == "legacy" and not self.legacy_redirect_url:
            raise ConfigError("BACKOFF_BROWSER_MODE=legacy needs BACKOFF_LEGACY_REDIRECT_URL")
        if self.reservation_ttl <= 0 or self.rate_window <= 0:
            raise ConfigError("BACKOFF_RESERVATION_TTL and RATE_LIMIT_WINDOW must be > 0")
