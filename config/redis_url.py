"""``REDIS_URL``: one server, a Sentinel-managed master or a Cluster, named by one URL.

    redis://[[user]:password@]host[:port][/db]      one server: redis-py's own forms,
    rediss://…   unix://[[user]:password@]/path       passed to it unchanged
    redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/<service>[/<db>]
        [?sentinel_username=…&sentinel_password=…]    port 26379 by default
    redis+cluster://[[user]:password@]host[:port][,host[:port]…]   port 6379 by default
    rediss+sentinel://…, rediss+cluster://…          the same over TLS

Sentinel: the hosts are sentinels, asked for the master of ``<service>``; the URL's
credentials are the servers' (``requirepass`` / ACL user), the sentinels' own, when they
have any, go in ``sentinel_username`` / ``sentinel_password`` (a sentinel without a password
refuses an ``AUTH``, so they are never sent by default). Cluster: the hosts are seed nodes —
any reachable one is enough, the client learns the rest; a Cluster has database 0 only.

Pure and I/O-free: ``kernel.redis`` turns the result into a client. Problems are described
without the URL (it is a secret as a whole: it may carry passwords).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote

Kind = Literal["server", "sentinel", "cluster"]

_SERVER_SCHEMES = {"redis", "rediss", "unix"}
_TOPOLOGY_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_DEFAULT_PORT: dict[Kind, int] = {"server": 6379, "sentinel": 26379, "cluster": 6379}
_SENTINEL_OPTIONS = {"sentinel_username", "sentinel_password"}
SCHEMES = (
    "redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// "
    "or rediss+cluster://"
)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """What ``REDIS_URL`` names. For ``server`` only ``url`` matters (redis-py parses it)."""

    kind: Kind
    url: str = field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    tls: bool = False
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)


def _node(text: str, kind: Kind) -> tuple[str, int]:
    if text.startswith("["):  # [v6]:port
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError("a host list like host:port,host:port (IPv6 in [brackets])")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
        if ":" in port_text:
            raise ValueError("IPv6 hosts in [brackets], e.g. [::1]:26379")
    if not host:
        raise ValueError("a host name in every entry of the host list")
    if not port_text:
        return host, _DEFAULT_PORT[kind]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("ports between 1 and 65535")
    return host, int(port_text)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    if not colon:  # redis://secret@host: the one word is the password, as redis-py reads it
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def _options(query: str, kind: Kind) -> dict[str, str]:
    allowed = _SENTINEL_OPTIONS if kind == "sentinel" else set()
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"no option {name!r} in a {kind} URL (options: {known})")
        options[name] = value
    return options


def _path(path: str, kind: Kind) -> tuple[str, int]:
    """(service, db) from the path: ``/<service>[/<db>]`` (sentinel), nothing or ``/0``
    (cluster)."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if kind == "cluster":
        if parts not in ([], ["0"]):
            raise ValueError("no database in a cluster URL (a Redis Cluster has only db 0)")
        return "", 0
    if not parts or not parts[0]:
        raise ValueError("the master's service name after the hosts: …/mymaster[/db]")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError("a path /<service name>[/<db number>]")
    return parts[0], int(parts[1]) if len(parts) == 2 else 0


def parse_redis_url(url: str) -> RedisTarget:
    """The target ``url`` names; ``ValueError`` saying what was expected, never echoing it."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or (scheme not in _SERVER_SCHEMES and scheme not in _TOPOLOGY_SCHEMES):
        raise ValueError(SCHEMES)
    if scheme in _SERVER_SCHEMES:
        return RedisTarget("server", url)
    kind, tls = _TOPOLOGY_SCHEMES[scheme]
    rest, _, _fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts = netloc
    if not hosts:
        raise ValueError(f"at least one host:port in a {kind} URL")
    nodes = tuple(_node(entry.strip(), kind) for entry in hosts.split(","))
    service, db = _path(slash + path, kind)
    options = _options(query, kind)
    username, password = _credentials(userinfo)
    return RedisTarget(
        kind,
        url,
        nodes=nodes,
        service=service,
        db=db,
        tls=tls,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
    )


def key_prefix_problem(prefix: str) -> str | None:
    """Why ``REDIS_KEY_PREFIX`` cannot carry the service's keys on a Cluster, or None.

    Redis hashes a key by the text between its first ``{`` and the next ``}`` when that is not
    empty (a hash tag), else by the whole key. The guard puts the keys of one attempt under
    ``<prefix>{bo}``, so they share a slot whatever the prefix holds — unless the prefix
    itself opens an *empty* tag (``{}``): then every key is hashed whole and a script's keys
    land on different shards.
    """
    start = prefix.find("{")
    if start >= 0 and prefix[start + 1 : start + 2] == "}":
        return "its first '{' is followed by '}'"
    return None
