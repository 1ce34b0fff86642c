"""The public listener's resource limits, from the settings; the open-files limit at start-up.

Defaults follow nginx where it has one (``client_header_timeout 60s``, ``keepalive_timeout
75s``, ``client_body_timeout 60s``, ``send_timeout 60s``); the connection bounds leave room
under the process's open-files limit for upstream connections and the internal listener, so
a flood of idle public connections never makes the kubelet's probes fail.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from config.settings import Settings

log = logging.getLogger("kratos_hooks")


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float  # a whole head, from the connection's start or the head's first byte
    idle_timeout: float  # a keep-alive connection between requests
    body_timeout: float  # silence while a body is being read
    send_timeout: float  # a client that stops reading its answer
    body_min_rate: float  # bytes/s a body must average once past the grace period (0: off)
    body_rate_grace: float  # seconds before the rate is held against a body
    body_buffer: int  # bytes of body received before an upstream connection is taken
    max_header_size: int  # request line and headers, in bytes (431 beyond)
    max_connections: int  # open client connections (503 beyond)
    max_connections_per_ip: int  # per client address (503 beyond); 0: no bound


def open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_budget(configured: int, files: int, pool_size: int) -> int:
    """Client connections the public listener may hold: the configured bound, but never
    more than the open-files limit leaves after upstream connections and a reserve for the
    internal listener, Redis, the database, logs and the like."""
    reserve = max(64, min(pool_size + 256, files // 4))
    return max(1, min(configured, files - reserve))


def client_limits(settings: Settings, files: int) -> ClientLimits:
    proxy = settings.proxy
    budget = connection_budget(proxy.max_connections, files, proxy.pool_size)
    return ClientLimits(
        header_timeout=proxy.header_timeout,
        idle_timeout=proxy.idle_timeout,
        body_timeout=proxy.body_timeout,
        send_timeout=proxy.send_timeout,
        body_min_rate=proxy.body_min_rate,
        body_rate_grace=proxy.body_rate_grace,
        body_buffer=proxy.body_buffer,
        max_header_size=proxy.max_header_size,
        max_connections=budget,
        max_connections_per_ip=proxy.max_connections_per_ip,
    )
