"""The typed, frozen settings model.

Every field names the environment variable that sets it (``env``) and, by its place in a
section, the TOML key (``[section] field``). Secrets carry ``repr=False`` and ``secret=True`` so
neither ``repr()`` nor ``kratos-hooks config check`` ever prints them. Parsing lives in
``config.loader``; this module only describes the shape and the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from config.backoff import BackoffSettings
from config.credentials import TokensSettings
from config.decisions import DecisionsSettings
from config.errors import ConfigError
from config.fields import IPNetwork, ListenAddress, setting
from config.hooks import HooksSettings
from config.redis_url import key_prefix_problem, parse_redis_url

__all__ = ["IPNetwork", "ListenAddress", "Settings", "setting"]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    public_listen: ListenAddress = setting(
        ListenAddress("0.0.0.0", 8080), "PUBLIC_LISTEN", doc="host:port of the edge proxy"
    )
    internal_listen: ListenAddress = setting(
        ListenAddress("0.0.0.0", 8081),
        "INTERNAL_LISTEN",
        doc="host:port of health, metrics, hooks and decisions",
    )
    trusted_proxies: tuple[IPNetwork, ...] = setting(
        (), "TRUSTED_PROXIES", doc="CIDRs whose X-Forwarded-For is believed"
    )
    workers: int = setting(1, "WORKERS", doc="processes sharing the ports (SO_REUSEPORT)")
    shutdown_timeout: float = setting(
        15.0, "SHUTDOWN_TIMEOUT", doc="seconds in-flight requests get after SIGTERM"
    )
    max_body_size: int = setting(
        64 * 1024, "MAX_BODY_SIZE", doc="bytes accepted by internal JSON endpoints"
    )

    def __post_init__(self) -> None:
        # Also run by ``--workers`` (``dataclasses.replace``): one check for both spellings.
        if self.workers < 1:
            raise ConfigError(f"WORKERS (--workers)={self.workers}: expected an integer >= 1")


@dataclass(frozen=True, slots=True)
class KratosSettings:
    public_url: str = setting("http://127.0.0.1:4433", "KRATOS_PUBLIC_URL")
    admin_url: str = setting("http://127.0.0.1:4434", "KRATOS_ADMIN_URL")
    admin_token: str = setting("", "KRATOS_ADMIN_TOKEN", secret=True)
    session_cookie: str = setting("ory_kratos_session", "KRATOS_SESSION_COOKIE")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    path_prefix: str = setting(
        "", "PUBLIC_PATH_PREFIX", doc="prefix stripped before forwarding, e.g. /ory/kratos/public"
    )
    preserve_host: bool = setting(
        True, "PROXY_PRESERVE_HOST", doc="send the client's Host to Kratos (else Kratos' own)"
    )
    connect_timeout: float = setting(5.0, "UPSTREAM_CONNECT_TIMEOUT")
    read_timeout: float = setting(30.0, "UPSTREAM_READ_TIMEOUT", doc="max silence between bytes")
    total_timeout: float = setting(0.0, "UPSTREAM_TOTAL_TIMEOUT", doc="0 = unbounded (streams)")
    pool_size: int = setting(256, "UPSTREAM_POOL_SIZE")
    keepalive_timeout: float = setting(
        30.0, "UPSTREAM_KEEPALIVE_TIMEOUT", doc="keep shorter than Kratos' idle timeout"
    )
    pool_timeout: float = setting(
        5.0, "UPSTREAM_POOL_TIMEOUT", doc="longest wait for a free Kratos connection (503)"
    )
    header_timeout: float = setting(
        60.0, "CLIENT_HEADER_TIMEOUT", doc="seconds a client has to send a request head (408)"
    )
    idle_timeout: float = setting(
        75.0, "CLIENT_IDLE_TIMEOUT", doc="an idle keep-alive client connection is closed after"
    )
    body_timeout: float = setting(
        60.0, "CLIENT_BODY_TIMEOUT", doc="longest silence while a request body is read (408)"
    )
    send_timeout: float = setting(
        60.0, "CLIENT_SEND_TIMEOUT", doc="longest a client may stop reading its answer"
    )
    body_buffer: int = setting(
        64 * 1024,
        "CLIENT_BODY_BUFFER",
        doc="request body bytes received before a Kratos connection is taken",
    )
    body_min_rate: float = setting(
        1024.0, "CLIENT_BODY_MIN_RATE", doc="bytes/s a request body must average (0 = off)"
    )
    body_rate_grace: float = setting(
        10.0, "CLIENT_BODY_RATE_GRACE", doc="seconds before the minimum body rate applies"
    )
    max_header_size: int = setting(
        64 * 1024, "CLIENT_MAX_HEADER_SIZE", doc="bytes of request line and headers (431)"
    )
    max_connections: int = setting(
        16384, "MAX_CONNECTIONS", doc="open public connections (503); capped by open files"
    )
    max_connections_per_ip: int = setting(
        1024, "MAX_CONNECTIONS_PER_IP", doc="open public connections per client IP (0 = any)"
    )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    redis_url: str = setting(
        "",
        "REDIS_URL",
        secret=True,
        doc="empty = in-memory store; redis://, rediss://, unix://, redis+sentinel://, "
        "redis+cluster://",
    )
    redis_key_prefix: str = setting("kh:", "REDIS_KEY_PREFIX")
    rabbitmq_url: str = setting("", "RABBITMQ_URL", secret=True, doc="empty = spool file only")
    database_url: str = setting("", "DATABASE_URL", secret=True, doc="empty = local spool")
    spool_dir: str = setting("./var/spool", "SPOOL_DIR", doc="embedded outbox location")
    migrate: bool = setting(
        False, "DB_MIGRATE", doc="apply DATABASE_URL's schema migrations at start-up"
    )

    def __post_init__(self) -> None:
        # The URL is a secret as a whole: the messages name what was expected, never it.
        if self.redis_url:
            try:
                parse_redis_url(self.redis_url)
            except ValueError as exc:
                raise ConfigError(f"REDIS_URL=***: expected {exc}") from None
        if problem := key_prefix_problem(self.redis_key_prefix):
            raise ConfigError(
                f"REDIS_KEY_PREFIX={self.redis_key_prefix!r}: expected no empty hash tag "
                f"('{{}}'): {problem}"
            )


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting("INFO", "LOG_LEVEL")
    format: Literal["json", "console"] = setting("json", "LOG_FORMAT")
    access_log: bool = setting(True, "ACCESS_LOG")


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    kratos: KratosSettings = field(default_factory=KratosSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    log: LogSettings = field(default_factory=LogSettings)
    hooks: HooksSettings = field(default_factory=HooksSettings)
    decisions: DecisionsSettings = field(default_factory=DecisionsSettings)
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    tokens: TokensSettings = field(default_factory=TokensSettings)
