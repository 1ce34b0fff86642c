"""Which address is the client: pure functions over the socket peer and forwarding headers.

Only a peer inside ``TRUSTED_PROXIES`` may speak for the client. From a trusted peer the
``X-Forwarded-For`` chain is read right to left and the first hop that is *not* itself a
trusted proxy is the client (a client can prepend anything it likes, but it cannot forge the
hops our own proxies appended). A hop that does not parse ends the walk: the nearest trusted
hop is used rather than a value the client may have written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from config.fields import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str) -> IPAddress | None:
    """An address from an XFF hop: bare, ``[v6]``, ``[v6]:port`` or ``v4:port``; else None."""
    value = text.strip().strip('"')
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    value = value.partition("%")[0]  # zone ids never identify a client
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def client_ip(
    peer: str,
    forwarded_for: Sequence[str],
    true_client_ip: str | None,
    trusted: Sequence[IPNetwork],
) -> str:
    """The client's address as text (IPv4-mapped IPv6 folded to IPv4)."""
    peer_ip = parse_ip(peer)
    if peer_ip is None:  # a unix socket or a test transport: nothing better to say
        return peer
    if not trusted or not is_trusted(peer_ip, trusted):
        return str(peer_ip)
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    nearest = peer_ip
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return str(nearest)
        if not is_trusted(address, trusted):
            return str(address)
        nearest = address
    if not hops and true_client_ip:
        address = parse_ip(true_client_ip)
        if address is not None:
            return str(address)
    return str(nearest)
