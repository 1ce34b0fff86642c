"""The canonical path rules judge, and the forms refused: case by case and by property."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.decisions import request as request_module
from handlers.decisions.paths import (
    BACKSLASH,
    ENCODED_BACKSLASH,
    ENCODED_HASH,
    ENCODED_NULL,
    ENCODED_PERCENT,
    ENCODED_QUESTION_MARK,
    ENCODED_SEMICOLON,
    ENCODED_SLASH,
    FRAGMENT,
    MALFORMED,
    SEMICOLON,
    canonical_glob,
    canonical_path,
    describe,
)
from handlers.decisions.request import OriginalRequest
from handlers.decisions.rules_loader import RulesError, parse_rules
from proxy.cli import main


@pytest.mark.parametrize(
    ("raw", "path", "forms"),
    [
        ("/app/x", "/app/x", 0),
        ("", "/", 0),
        ("/", "/", 0),
        ("/public/../admin/x", "/admin/x", 0),
        ("/public/%2e%2E/admin", "/admin", 0),  # dot segments count after decoding
        ("/public/.%2e/admin", "/admin", 0),
        ("/public/...", "/public/...", 0),  # three dots are a name
        ("/a//b/./c/", "/a/b/c/", 0),
        ("//a///b", "/a/b", 0),
        ("/a/b/..", "/a/", 0),  # RFC 3986 §5.2.4: the trailing slash stays
        ("/a/.", "/a/", 0),
        ("/../../etc", "/etc", 0),  # never above the root
        ("/%41%7e%2D%5f", "/A~-_", 0),  # unreserved escapes decoded
        ("/a%2Bb%3a%40%21", "/a+b:@!", 0),  # so are sub-delimiters, ":" and "@"
        ("/a+b", "/a+b", 0),
        ("/caf%c3%a9", "/caf%C3%A9", 0),  # the rest upper-cased
        ("/café", "/caf%C3%A9", 0),  # raw UTF-8 written as escapes
        ("/a%20b", "/a%20b", 0),
        ("/a b", "/a%20b", 0),
        ("/.well-known/x", "/.well-known/x", 0),
        ("/files/a%2Fb", "/files/a%2Fb", ENCODED_SLASH),  # one segment, never a separator
        ("/public/..%2fapp/x", "/public/..%2Fapp/x", ENCODED_SLASH),
        ("/public/%2e%2e%2fapp/x", "/public/..%2Fapp/x", ENCODED_SLASH),
        ("/public/..%5Capp/x", "/public/..%5Capp/x", ENCODED_BACKSLASH),
        ("/a%00b", "/a%00b", ENCODED_NULL),
        ("/public/..%3B/app/x", "/public/..%3B/app/x", ENCODED_SEMICOLON),
        ("/public/%252e%252e/app/x", "/public/%252e%252e/app/x", ENCODED_PERCENT),
        ("/a%3fb", "/a%3Fb", ENCODED_QUESTION_MARK),
        ("/a%23b", "/a%23b", ENCODED_HASH),
        ("/public/..\\app/x", "/public/..%5Capp/x", BACKSLASH),
        ("/public/..;/app/x", "/public/..;/app/x", SEMICOLON),  # "..;" is no dot segment
        ("/app/x#/../../public/y", "/app/x", FRAGMENT),
        ("/a%zz", "/a%25zz", MALFORMED),
        ("/a%4", "/a%254", MALFORMED),
        ("/a\x01b", "/a%01b", MALFORMED),
        ("/a\udcffb", "/a%FFb", 0),  # a raw byte as aiohttp decodes it (surrogateescape)
        ("/public/..%2F..%5C;x#y", "/public/..%2F..%5C;x", 1 | 2 | SEMICOLON | FRAGMENT),
    ],
)
def test_canonical_path(raw: str, path: str, forms: int) -> None:
    assert canonical_path(raw) == (path, forms)


@pytest.mark.parametrize(
    ("uri", "path", "forms"),
    [
        ("/app/x?next=/public/../x%2F", "/app/x", 0),  # the query is never judged
        ("/app/x?q#/../../public", "/app/x", FRAGMENT),  # but a fragment after it is refused
        ("/app/x#?q", "/app/x", FRAGMENT),
    ],
)
def test_the_query_is_dropped_and_a_fragment_anywhere_refused(
    uri: str, path: str, forms: int
) -> None:
    assert canonical_path(uri) == (path, forms)
    assert request_module.path_of(uri) == (path, forms)  # the remembered answer is the same


def test_remembered_paths_stay_bounded() -> None:
    for n in range(request_module.PATHS_LIMIT + 10):
        assert request_module.path_of(f"/unique/{n}/../x{n}?q") == (f"/unique/x{n}", 0)
    assert request_module.path_of.cache_info().currsize <= request_module.PATHS_LIMIT


def test_every_form_is_named_for_the_caller() -> None:
    assert describe(ENCODED_SLASH | FRAGMENT) == "an encoded slash (%2F), a fragment (#)"


# --- properties --------------------------------------------------------------------------

# Text with every character class that matters: safe characters, escapes of anything, the
# refused characters raw and encoded, dots, slashes, non-ASCII and raw bytes.
PIECES = ("/", "//", ".", "..", "%2e", "%2E", ";", "\\", "#", "%", "é", "\udcfe", "%25", "%2F")
raw_paths = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,=:@/", max_size=4),
        st.integers(0, 255).map(lambda octet: f"%{octet:02x}"),
        st.integers(0, 255).map(lambda octet: f"%{octet:02X}"),
        st.characters(codec="utf-8").map(str),
    ),
    max_size=12,
).map("".join)
CANONICAL = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,=:@;]|%[0-9A-F]{2}|/)*")


@settings(max_examples=1000, deadline=None)
@given(raw_paths)
def test_canonicalising_twice_changes_nothing(raw: str) -> None:
    path, _ = canonical_path(raw)
    assert canonical_path(path)[0] == path


@settings(max_examples=1000, deadline=None)
@given(raw_paths)
def test_the_canonical_path_has_no_dot_or_empty_segment(raw: str) -> None:
    path, _ = canonical_path(raw)
    assert CANONICAL.fullmatch(path), path  # ASCII, escapes upper-cased, nothing else
    assert "//" not in path
    assert not any(segment in {".", ".."} for segment in path.split("/"))


@settings(max_examples=1000, deadline=None)
@given(raw_paths, st.data())
def test_spelling_a_safe_character_as_an_escape_changes_nothing(
    raw: str, data: st.DataObject
) -> None:
    """What an app decodes to the same text is judged as one path: any unreserved or
    sub-delimiter character may arrive escaped (as nginx with a URI in proxy_pass, or a
    client, may spell it) without the judged path or the forms changing."""
    spots = [i for i, c in enumerate(raw) if c in "abcAZ09-._~!$&'()*+,=:@"]
    if not spots:
        return
    i = data.draw(st.sampled_from(spots))
    if raw[max(0, i - 2) : i].startswith("%") or raw[i - 1 : i] == "%":
        return  # the character is part of an escape already
    escape = data.draw(st.sampled_from([f"%{ord(raw[i]):02x}", f"%{ord(raw[i]):02X}"]))
    assert canonical_path(raw[:i] + escape + raw[i + 1 :]) == canonical_path(raw)


@settings(max_examples=1000, deadline=None)
@given(raw_paths)
def test_a_path_with_no_ambiguous_form_is_canonical_after_one_pass(raw: str) -> None:
    path, forms = canonical_path(raw)
    if not forms:
        assert canonical_path(path) == (path, 0)


# --- rule globs in the same spelling -----------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "spelled", "forms"),
    [
        ("/app/**", "/app/**", 0),
        ("/café/*", "/caf%C3%A9/*", 0),
        ("/caf%c3%a9/**", "/caf%C3%A9/**", 0),
        ("/%61pp/*/x?", "/app/*/x?", 0),  # "*" and "?" stay glob syntax
        ("/a%2bb", "/a+b", 0),
        ("/files/a%2fb/**", "/files/a%2Fb/**", ENCODED_SLASH),
    ],
)
def test_rule_globs_are_spelled_as_judged_paths_are(pattern: str, spelled: str, forms: int) -> None:
    assert canonical_glob(pattern) == (spelled, forms)


def rule(extra: str, paths: str = '["/files/**"]') -> str:
    return (
        f'[[rules]]\nid = "files"\npaths = {paths}\nauthenticators = ["anonymous"]\n'
        f'authorizer = "allow"\n{extra}\n'
    )


def test_a_unicode_glob_matches_the_escaped_and_the_raw_path() -> None:
    rules = parse_rules(rule("", '["/café/**"]'), "r")
    for uri in ("/caf%C3%A9/menu", "/caf%c3%a9/menu", "/café/menu"):
        assert rules.first_match(OriginalRequest("GET", "https", "h", uri, "ip", True)), uri


@pytest.mark.parametrize(
    ("extra", "paths", "expected"),
    [
        ("allow_encoded_slash = 1", '["/files/**"]', "field 'allow_encoded_slash': expected"),
        ("", '["/files/a%2Fb"]', "allow_encoded_slash = true for the glob '/files/a%2Fb'"),
        ("", '["/files/a;v=1"]', "allow_semicolon = true"),
        ("", '["/files/../x"]', "'.', '..' or empty segment"),
        ("", '["/files//x"]', "'.', '..' or empty segment"),
        ("", '["/files/."]', "'.', '..' or empty segment"),
        ("", '["/files/%zz"]', "a path glob without a malformed escape"),
        ("allow_fragments = true", '["/files/**"]', "field 'allow_fragments': expected"),
    ],
)
def test_allowances_and_path_globs_are_validated(extra: str, paths: str, expected: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(rule(extra, paths), "r")
    assert "rule #1 ('files')" in str(caught.value)
    assert expected in str(caught.value)


def test_allowances_are_read_per_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = rule("allow_encoded_slash = true\nallow_encoded_percent = true", '["/files/a%2Fb"]')
    text += rule("", '["/other/**"]').replace('"files"', '"other"')
    rules = parse_rules(text, "r")
    assert rules.rules[0].allowed_forms == ENCODED_SLASH | ENCODED_PERCENT
    assert rules.rules[1].allowed_forms == 0
    path = tmp_path / "rules.toml"
    path.write_text(text)
    assert main(["rules", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1. files: anonymous → allow (allow_encoded_slash, allow_encoded_percent)" in out
    assert "2. other: anonymous → allow\n" in out
