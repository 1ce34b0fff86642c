"""The issue's cases, one by one: what the proxy's functions say, and that it is what the
Go packages say."""

from __future__ import annotations

import pytest

from proxy.guard.identity import normalise_identifier
from proxy.kernel.canonical import (
    canonical_path,
    canonical_uuid,
    query_get,
    request_path,
    route_key,
)
from proxy.kernel.mediatype import media_type
from tests.parity.forms import LOGIN_FORMS, REFUSED_FORMS
from tests.parity.gen_identifier_table import TARGET, render
from tests.support.go_oracle import GoOracle, kratos_identifier

FLOW = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
LOGIN = "/self-service/login"


@pytest.mark.parametrize("target", LOGIN_FORMS)
def test_path_forms_kratos_serves_as_login_are_login(go_oracle: GoOracle, target: str) -> None:
    route = go_oracle.route("POST", f"{target}?flow={FLOW}")
    assert route.handler == "POST /self-service/login"
    split = request_path(f"{target}?flow={FLOW}")
    assert split is not None
    path = canonical_path(split[0])
    assert path == LOGIN == route.path
    assert query_get(split[1], "flow") == FLOW


@pytest.mark.parametrize(
    "target",
    ["/self-service/login/", "/Self-Service/Login", "/SELF-SERVICE/LOGIN/", "//self-service/LOGIN"],
)
def test_variants_kratos_redirects_share_the_login_key(go_oracle: GoOracle, target: str) -> None:
    assert go_oracle.route("POST", target).kind == "redirect"
    path = canonical_path(target)
    assert path is not None and route_key(path) == route_key(LOGIN)


@pytest.mark.parametrize("target", REFUSED_FORMS)
def test_paths_go_refuses_are_refused(go_oracle: GoOracle, target: str) -> None:
    assert go_oracle.route("POST", target).kind == "bad_request"
    assert request_path(target) is None or canonical_path(target) is None


@pytest.mark.parametrize(
    "variant",
    [
        "alice\u200b@example.com",
        "alice\u200d@example.com",
        "\ufeffalice@example.com",
        "ali\u00adce@example.com",
        "alice\x00@example.com",
        "\x01alice\x1f@example.com",
        "alice\x9b@example.com",
        "alice@example.com\u202e",
        "\u202ealice@example.com",
        "ALICE@EXAMPLE.COM",
        "ａｌｉｃｅ@example.com",
        "ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        " " * 511 + "alice@example.com",
        "\u3000alice@example.com\u00a0",
    ],
)
def test_identifier_variants_kratos_merges_share_a_key(go_oracle: GoOracle, variant: str) -> None:
    assert kratos_identifier(go_oracle.identifier(variant)) == "alice@example.com"
    assert normalise_identifier(variant) == "alice@example.com"


def test_dotted_capital_i_is_i_for_every_release(go_oracle: GoOracle) -> None:
    # Older releases lower-cased with strings.ToLower (alİce = alice); the current one
    # gives i + U+0307. The key merges all three.
    assert go_oracle.lower("alİce") == "alice"
    assert kratos_identifier(go_oracle.identifier("alİce")) == "ali\u0307ce"
    assert {normalise_identifier(v) for v in ("alİce", "alice", "ali\u0307ce")} == {"alice"}


def test_x_text_composes_supplementary_starters(go_oracle: GoOracle) -> None:
    # x/text looks composition pairs up by their low 16 bits: tag A + circumflex is Â.
    assert kratos_identifier(go_oracle.identifier("\U000e0041\u0302lice")) == "âlice"
    assert normalise_identifier("\U000e0041\u0302lice") == normalise_identifier("Âlice")


@pytest.mark.parametrize(
    "variant",
    ["+1 (415) 555-2671", "+14155552671", "＋１ ４１５ ５５５ ２６７１", "+1 415\u200b555 2671"],
)
def test_phone_numbers_share_the_e164_key(go_oracle: GoOracle, variant: str) -> None:
    assert kratos_identifier(go_oracle.identifier(variant)) == "+14155552671"
    assert normalise_identifier(variant) == "+14155552671"


def test_arabic_indic_digits_key_the_number_older_releases_read() -> None:
    assert normalise_identifier("+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨") == "+442079460958"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("applİcation/json", "application/json"),
        ("APPLICATION/JSON", "application/json"),
        (" application/json ; charset=utf-8", "application/json"),
        ("application/x-www-form-urlencoded;charset=UTF-8", "application/x-www-form-urlencoded"),
        ("multipart/form-data; boundary=----x", "multipart/form-data"),
        ("application/json; charset", None),
        ("application/json; a=1; a=2", None),
        ("application/json, text/plain", None),
        ("", None),
        ("application/jſon", None),
    ],
)
def test_media_types(go_oracle: GoOracle, value: str, expected: str | None) -> None:
    assert media_type(value) == expected
    go = go_oracle.media_type(value.strip())
    if expected is not None:
        assert (go.ok, go.type) == (True, expected)
    else:
        assert go.decoder_new is None


@pytest.mark.parametrize(
    "form",
    [
        FLOW,
        FLOW.upper(),
        "{" + FLOW + "}",
        "{" + FLOW.upper() + "}",
        "urn:uuid:" + FLOW,
        FLOW.replace("-", ""),
        "{" + FLOW.replace("-", "") + "}",
        "urn:uuid:" + FLOW.replace("-", ""),
    ],
)
def test_flow_id_forms(go_oracle: GoOracle, form: str) -> None:
    assert go_oracle.uuid(form) == FLOW == canonical_uuid(form)


@pytest.mark.parametrize("bad", ["", "x", FLOW[:-1], FLOW + "0", " " + FLOW, "{" + FLOW, "٣" * 32])
def test_flow_id_refusals(go_oracle: GoOracle, bad: str) -> None:
    assert go_oracle.uuid(bad) is None
    assert canonical_uuid(bad) is None


def test_identifier_table_is_the_oracles(go_oracle: GoOracle) -> None:
    """``proxy/guard/identifier_table.py`` is what the oracle's x/text says (regenerate it
    with ``python -m tests.parity.gen_identifier_table``)."""
    assert TARGET.read_text() == render(go_oracle)
