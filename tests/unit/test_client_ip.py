"""Client-IP selection: only trusted proxies may speak for the client."""

from __future__ import annotations

import ipaddress

import pytest

from proxy.kernel.client_ip import client_ip, parse_ip

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:198.51.100.2", "198.51.100.2"),
        ("fe80::1%eth0", "fe80::1"),
        ("unknown", None),
        ("", None),
    ],
)
def test_parse_ip_reads_every_form_proxies_write(text: str, expected: str | None) -> None:
    parsed = parse_ip(text)
    assert (str(parsed) if parsed is not None else None) == expected


def test_untrusted_peer_cannot_choose_its_ip() -> None:
    assert client_ip("198.51.100.9", ["1.2.3.4"], "5.6.7.8", TRUSTED) == "198.51.100.9"


def test_no_trusted_proxies_means_the_socket_peer() -> None:
    assert client_ip("10.1.1.1", ["1.2.3.4"], None, ()) == "10.1.1.1"


def test_trusted_peer_gives_rightmost_untrusted_hop() -> None:
    # The client prepended a forged 1.2.3.4; our ingress appended the real 203.0.113.7.
    chain = ["1.2.3.4, 203.0.113.7, 10.0.0.5"]
    assert client_ip("10.0.0.9", chain, None, TRUSTED) == "203.0.113.7"


def test_multiple_forwarded_for_headers_form_one_chain() -> None:
    assert client_ip("10.0.0.9", ["1.2.3.4", "203.0.113.7"], None, TRUSTED) == "203.0.113.7"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.9", ["10.0.0.1, 10.0.0.2"], None, TRUSTED) == "10.0.0.1"


def test_garbage_hop_stops_the_walk_at_the_nearest_trusted_hop() -> None:
    assert client_ip("10.0.0.9", ["evil, 10.0.0.3"], None, TRUSTED) == "10.0.0.3"


def test_true_client_ip_from_trusted_peer_without_xff() -> None:
    assert client_ip("10.0.0.9", [], "203.0.113.8", TRUSTED) == "203.0.113.8"


def test_ipv6_chain_and_mapped_peer() -> None:
    assert client_ip("fd00::2", ["2001:db8::7, fd00::1"], None, TRUSTED) == "2001:db8::7"
    assert client_ip("::ffff:10.0.0.9", ["203.0.113.1"], None, TRUSTED) == "203.0.113.1"
