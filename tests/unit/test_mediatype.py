"""Media types as Kratos' body decoder reads them (pure functions)."""

from __future__ import annotations

import pytest

from proxy.kernel.mediatype import go_lower, media_type, parse_media_type


def test_go_lower_is_the_simple_case_mapping() -> None:
    assert go_lower("applİcation/JSON") == "application/json"
    assert go_lower("\u212a") == "k"
    assert go_lower("ΟΔΟΣ") == "οδοσ"  # no final sigma
    assert go_lower("ǅ") == "ǆ"
    assert go_lower("a\udcffb") == "a\ufffdb"  # a non-UTF-8 byte becomes U+FFFD
    assert "İ".lower() != go_lower("İ")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("application/json", ("application/json", {})),
        ("Application/JSON; Charset=UTF-8", ("application/json", {"charset": "UTF-8"})),
        ('text/plain; a="b c"; d=e;', ("text/plain", {"a": "b c", "d": "e"})),
        ('text/plain; a="q\\"t"', ("text/plain", {"a": 'q"t'})),
        ("multipart/form-data;boundary=x", ("multipart/form-data", {"boundary": "x"})),
        ("text/plain; a*=utf-8''x%20y", ("text/plain", {"a": "x y"})),
        ("text/plain; a*0=x; a*1=y", ("text/plain", {"a": "xy"})),
        ("json", ("json", {})),  # a lone token is a media type to Go
    ],
)
def test_parse_media_type(value: str, parsed: tuple[str, dict[str, str]]) -> None:
    assert parse_media_type(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "",
        "/json",
        "application/",
        "application/json/x",
        "application/json; charset",
        "application/json; =x",
        'application/json; a="open',
        "application/json; a=1; a=2",
        "application/j\u017fon",
        "application/json x",
    ],
)
def test_parse_media_type_refusals(value: str) -> None:
    assert parse_media_type(value) is None


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("application/json", "application/json"),
        ("applİcation/json", "application/json"),
        ("\u212aapplication/json", "kapplication/json"),  # refused by Kratos, by type
        ("  APPLICATION/JSON\t", "application/json"),
        ("application/json; charset=utf-8", "application/json"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("multipart/form-data; boundary=abc", "multipart/form-data"),
        ("text/plain", "text/plain"),
        ("application/json; charset", None),
        ("application/json, text/plain", None),
        ("text/plain, application/json", None),
        (None, None),
        ("", None),
    ],
)
def test_media_type(value: str | None, decoded: str | None) -> None:
    assert media_type(value) == decoded
