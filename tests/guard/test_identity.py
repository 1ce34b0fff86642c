"""Identifier normalisation, address grouping and bucket naming (the parity suite compares
the normalisation with Kratos' own: ``tests/parity/test_identifiers.py``)."""

from __future__ import annotations

import pytest

from proxy.guard.identity import MAX_IDENTIFIER, Keyer, address_group, normalise_identifier


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
    assert len(normalise_identifier("a" * 1_000_000)) == MAX_IDENTIFIER


@pytest.mark.parametrize(
    "variant",
    [
        "alice\u200b@example.com",  # zero-width space
        "alice\u200d@example.com",  # zero-width joiner
        "\ufeffalice@example.com",  # byte-order mark
        "ali\u00adce@example.com",  # soft hyphen
        "alice\x00@example.com",
        "\x01alice\x1f@exa\x7fmple.com",  # C0 controls, DEL
        "alice\x85@exam\x9bple.com",  # C1 controls
        "alice@example.com\u202e",  # right-to-left override
        "\u2066alice\u2069@example.com",  # isolates
        "alice\ufe0f@example.com",  # variation selector
        "alice\U000e0001@example.com",  # language tag
        "alice\ufdd0@example.com",  # noncharacter
        "alice\ue000@example.com",  # private use
        "alice\u0378@example.com",  # unassigned
        "alİce@example.com",  # Go's strings.ToLower: i (older Kratos)
        "ali\u0307ce@example.com",  # cases.Lower of İ (current Kratos)
        " " * 511 + "alice@example.com",  # trimmed before the length is bounded
        "\u200b " * 300 + "alice@example.com",
    ],
)
def test_what_kratos_strips_or_folds_is_one_account(variant: str) -> None:
    assert normalise_identifier(variant) == "alice@example.com"


@pytest.mark.parametrize(
    "variant",
    [
        "+1 (415) 555-2671",
        "+14155552671",
        "\uff0b\uff11 \uff14\uff11\uff15 \uff15\uff15\uff15 \uff12\uff16\uff17\uff11",
        " +1-415-555-2671 ",
        "+1 415\u200b555 2671",
    ],
)
def test_phone_numbers_are_e164(variant: str) -> None:
    assert normalise_identifier(variant) == "+14155552671"


def test_not_every_number_is_a_phone_number() -> None:
    # No default region (Kratos parses with ""): without a "+" nothing is a valid number.
    assert normalise_identifier("4155552671") == "4155552671"
    assert normalise_identifier("alice+1@example.com") == "alice+1@example.com"


def test_deliberate_over_merging() -> None:
    # Contextual characters Kratos keeps only in the right context are always stripped, and
    # casefolding is coarser than Kratos' lower-casing: harmless shared buckets.
    assert normalise_identifier("l·l") == normalise_identifier("ll")
    assert normalise_identifier("Straße") == normalise_identifier("strasse")
    # Arabic-Indic digits: the number older releases read (the current one strips them).
    assert normalise_identifier("+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨") == "+442079460958"


def test_x_text_composition_quirk_is_followed() -> None:
    # Kratos' NFKC (x/text) composes a supplementary starter with a mark by their low
    # 16 bits: U+E0041 (a tag character) + circumflex is "Â", so the same account as "â".
    assert normalise_identifier("\U000e0041\u0302lice") == normalise_identifier("âlice")


def test_ascii_fast_path_agrees_with_the_general_path() -> None:
    for text in ("Alice@Example.com", " \tbob\x00 ", "+1 415 555 2671", "A\x7fB"):
        assert normalise_identifier(text) == normalise_identifier(text + "\u200b")


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


def test_padding_never_hides_a_phone_number() -> None:
    # libphonenumber refuses inputs over 250 characters: the key is computed after trimming,
    # as every Kratos release trims first (found by the parity suite).
    arabic = (
        "+\u0664\u0664 \u0660\u0662\u0660 \u0667\u0669\u0664\u0666 \u200d\u0660\u0669\u0665\u0668"
    )
    assert normalise_identifier(" " * 500 + arabic) == normalise_identifier(arabic)
    assert normalise_identifier(" " * 600 + "+1 (415) 555-2671") == "+14155552671"
