"""The token format: made by ``issue``, recognised by ``Format`` without a look-up."""

from __future__ import annotations

import re
import zlib

from hypothesis import given
from hypothesis import strategies as st

from handlers.credentials.tokens import (
    BASE62,
    BODY_LENGTH,
    Format,
    base62,
    checksum,
    hint_of,
    is_token_id,
    issue,
    new_token_id,
    token_hash,
)

PREFIXES = {"pat": "pat_", "key": "key_", "svc": "svc_"}
FORMAT = Format(PREFIXES)


def test_an_issued_token_has_prefix_178_random_bits_and_a_checksum() -> None:
    made = issue("pat", PREFIXES)
    assert made.secret.startswith("pat_") and len(made.secret) == 4 + BODY_LENGTH
    random_part, check = made.secret[4:34], made.secret[34:]
    assert all(c in BASE62 for c in random_part)
    assert 30 * 5.95 >= 178  # log2(62) > 5.95 bits per character
    assert check == base62(zlib.crc32(random_part.encode()), 6)
    assert made.hash == token_hash(made.secret) and len(made.hash) == 64
    assert made.hint == "pat_…" + made.secret[-4:]
    assert FORMAT.well_formed(made.secret)
    assert FORMAT.kind_of(made.secret) == "pat"


def test_each_kind_gets_its_own_prefix_and_tokens_never_repeat() -> None:
    seen = set()
    for kind in ("pat", "key", "svc"):
        for _ in range(50):
            made = issue(kind, PREFIXES)
            assert FORMAT.kind_of(made.secret) == kind
            seen.add(made.secret)
    assert len(seen) == 150


def test_a_mistyped_token_fails_the_checksum() -> None:
    good = issue("key", PREFIXES).secret
    for position in range(4, len(good)):
        replacement = "A" if good[position] != "A" else "B"
        typo = good[:position] + replacement + good[position + 1 :]
        assert not FORMAT.well_formed(typo), position
    swapped = good[:10] + good[11] + good[10] + good[12:]
    assert good[10] == good[11] or not FORMAT.well_formed(swapped)


def test_malformed_shapes_are_refused() -> None:
    good = issue("svc", PREFIXES).secret
    for bad in (
        "",
        "svc_",
        good[:-1],
        good + "x",
        "ory_st_" + good[4:],
        "xyz_" + good[4:],
        good[:20] + "-" + good[21:],
        good.upper(),
        "SVC_" + good[4:],
    ):
        assert not FORMAT.well_formed(bad), bad


@given(st.text(alphabet=BASE62, min_size=30, max_size=30))
def test_checksum_is_six_base62_characters_of_the_crc(random_part: str) -> None:
    value = checksum(random_part)
    assert len(value) == 6 and all(c in BASE62 for c in value)
    number = 0
    for char in value:
        number = number * 62 + BASE62.index(char)
    assert number == zlib.crc32(random_part.encode())
    assert FORMAT.well_formed("pat_" + random_part + value)


def test_the_scanner_regex_matches_ours_only() -> None:
    pattern = re.compile(FORMAT.scanner_regex())
    text = "export TOKEN=" + issue("pat", PREFIXES).secret + " # and ory_st_abcdef"
    assert [m.group(0)[:4] for m in pattern.finditer(text)] == ["pat_"]
    assert FORMAT.scanner_regex() == r"\b(?:key|pat|svc)_[0-9A-Za-z]{36}\b"


def test_configured_prefixes_are_honoured() -> None:
    custom = Format({"pat": "acmepat_", "key": "acmekey_", "svc": "acmesvc_"})
    made = issue("key", {"pat": "acmepat_", "key": "acmekey_", "svc": "acmesvc_"})
    assert custom.well_formed(made.secret) and custom.kind_of(made.secret) == "key"
    assert not FORMAT.well_formed(made.secret)


def test_token_ids_are_public_names_distinct_from_secrets() -> None:
    token_id = new_token_id()
    assert is_token_id(token_id) and token_id.startswith("tok_")
    assert not is_token_id("tok_short") and not is_token_id(issue("pat", PREFIXES).secret)
    assert hint_of("pat_abcdefgh", "pat_") == "pat_…efgh"
