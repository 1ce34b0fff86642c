"""Identifier normalisation, address grouping and bucket naming."""

from __future__ import annotations

import pytest

from proxy.guard.identity import Keyer, address_group, normalise_identifier


@pytest.mark.parametrize(
    "variant",
    [
        "alice@example.com",
        "Alice@Example.com",
        " alice@example.com",
        "alice@example.com\t\n",
        "ALICE@EXAMPLE.COM",
        "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",  # full-width forms  # noqa: RUF001
        "\u00a0Alice@Example.com\u3000",  # no-break and ideographic spaces
    ],
)
def test_identifier_variants_are_one_account(variant: str) -> None:
    assert normalise_identifier(variant) == "alice@example.com"


def test_casefold_is_unicode_aware() -> None:
    assert normalise_identifier("STRASSE") == normalise_identifier("straße")
    assert normalise_identifier("ΣΊΣΥΦΟΣ") == normalise_identifier("σίσυφος")


def test_distinct_accounts_stay_distinct() -> None:
    assert normalise_identifier("alice@example.com") != normalise_identifier("alice@example.co")


def test_huge_identifier_is_bounded() -> None:
    assert len(normalise_identifier("a" * 1_000_000)) <= 512


@pytest.mark.parametrize(
    ("ip", "group"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
    ],
)
def test_address_groups(ip: str, group: str) -> None:
    assert address_group(ip) == group


def test_ipv6_neighbours_share_a_bucket_other_prefixes_do_not() -> None:
    keyer = Keyer("secret")
    same = {keyer.address(address_group(f"2001:db8:0:1::{i:x}")) for i in range(1, 50)}
    assert len(same) == 1
    assert keyer.address(address_group("2001:db8:0:2::1")) not in same


def test_bucket_names_depend_on_the_secret_and_hide_the_identifier() -> None:
    one, two = Keyer("one"), Keyer("two")
    name = one.identifier("alice@example.com")
    assert name == one.identifier("alice@example.com")
    assert name != two.identifier("alice@example.com")
    assert "alice" not in name and len(name) == 32
    # An identifier and an address with the same text never share a bucket.
    assert one.identifier("10.0.0.1") != one.address("10.0.0.1")
