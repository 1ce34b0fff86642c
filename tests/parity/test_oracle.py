"""The oracle itself answers the facts KRATOS.md states (so the parity properties compare
against the right thing)."""

from __future__ import annotations

import pytest

from tests.support.go_oracle import GoOracle, kratos_identifier

FLOW = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


@pytest.mark.parametrize(
    "target",
    [
        "/self-service/login",
        "//self-service/login",
        "/self-service/./login",
        "/x/../self-service/login",
        "/self-service/%2e/login",
        "/self-service/login/../login",
        "/self-service%2Flogin",
        "http://evil.example/self-service/login",
        "x:/self-service/login",
    ],
)
def test_cleaned_paths_reach_the_login_handler(go_oracle: GoOracle, target: str) -> None:
    route = go_oracle.route("POST", f"{target}?flow={FLOW}")
    assert (route.kind, route.handler) == ("handler", "POST /self-service/login")
    assert route.raw_query == f"flow={FLOW}"


@pytest.mark.parametrize(
    ("method", "target", "status", "location"),
    [
        ("POST", "/self-service/login/", 307, "/self-service/login"),
        ("POST", "/Self-Service/LOGIN", 307, "/self-service/login"),
        ("GET", "/self-service/login/flows/", 301, "/self-service/login/flows"),
    ],
)
def test_case_and_trailing_slash_variants_are_redirected(
    go_oracle: GoOracle, method: str, target: str, status: int, location: str
) -> None:
    route = go_oracle.route(method, target)
    assert (route.kind, route.status, route.location) == ("redirect", status, location)


@pytest.mark.parametrize(
    ("method", "target", "kind"),
    [
        ("GET", "/self-service/%zz", "bad_request"),
        ("GET", "/self-service/\x01", "bad_request"),
        ("GET", "self-service/login", "bad_request"),
        ("OPTIONS", "*", "options_star"),
        ("PUT", "/self-service/login", "method_not_allowed"),
        ("POST", "/self-service/login#x", "not_found"),
        ("GET", "http://evil.example/echo", "not_found"),
        # httprouter's case-insensitive fix-up is byte-wise: a two-byte İ finds nothing.
        ("POST", "/self-servİce/login", "not_found"),
    ],
)
def test_other_outcomes(go_oracle: GoOracle, method: str, target: str, kind: str) -> None:
    assert go_oracle.route(method, target).kind == kind


@pytest.mark.parametrize(
    "variant",
    [
        "alice@example.com",
        "ALICE@example.com",
        " alice@example.com",
        "alice\u200b@example.com",
        "alice\u200d@example.com",
        "\ufeffalice@example.com",
        "ali\u00adce@example.com",
        "alice\x00@example.com",
        "alice\x85@example.com",
        "alice@example.com\u202e",
        "ａｌｉｃｅ@example.com",
        " " * 511 + "alice@example.com",
    ],
)
def test_kratos_identifier_variants(go_oracle: GoOracle, variant: str) -> None:
    assert kratos_identifier(go_oracle.identifier(variant)) == "alice@example.com"


def test_phone_numbers_become_e164(go_oracle: GoOracle) -> None:
    for variant in ("+1 (415) 555-2671", "+14155552671", "＋１ ４１５ ５５５ ２６７１"):
        assert kratos_identifier(go_oracle.identifier(variant)) == "+14155552671"


def test_current_kratos_lowercases_dotted_capital_i_fully(go_oracle: GoOracle) -> None:
    # cases.Lower(und): İ -> i + U+0307, not i; only Go's strings.ToLower (older Kratos,
    # media types) maps it to a plain i.
    assert go_oracle.identifier("alİce").normalized == "ali\u0307ce"
    assert go_oracle.lower("applİcation/JSON") == "application/json"
    assert go_oracle.lower("\u212a") == "k"


@pytest.mark.parametrize(
    ("value", "media", "decoder"),
    [
        ("application/json", "application/json", "json"),
        ("applİcation/json", "application/json", "json"),
        ("Application/JSON; charset=utf-8", "application/json", "json"),
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded", "form"),
        ("multipart/form-data; boundary=x", "multipart/form-data", "form"),
        ("text/plain", "text/plain", None),
    ],
)
def test_media_types(go_oracle: GoOracle, value: str, media: str, decoder: str | None) -> None:
    answer = go_oracle.media_type(value)
    assert (answer.type, answer.decoder_new) == (media, decoder)


def test_invalid_parameters_refuse_the_body(go_oracle: GoOracle) -> None:
    answer = go_oracle.media_type("application/json; charset")
    assert (answer.ok, answer.type, answer.decoder_new) == (False, "application/json", None)
    # The older decoderx read a comma-separated list piece by piece.
    listed = go_oracle.media_type("text/plain, application/json")
    assert (listed.decoder_new, listed.decoder_old) == (None, "json")


@pytest.mark.parametrize(
    "form",
    [
        FLOW,
        FLOW.upper(),
        "{" + FLOW + "}",
        "urn:uuid:" + FLOW,
        FLOW.replace("-", ""),
        "{" + FLOW.replace("-", "") + "}",
        "urn:uuid:" + FLOW.replace("-", "").upper(),
    ],
)
def test_uuid_forms(go_oracle: GoOracle, form: str) -> None:
    assert go_oracle.uuid(form) == FLOW


def test_uuid_refusals(go_oracle: GoOracle) -> None:
    assert go_oracle.uuid("URN:UUID:" + FLOW) is None
    assert go_oracle.uuid(" " + FLOW) is None


def test_query_get(go_oracle: GoOracle) -> None:
    assert go_oracle.query_get(f"flow={FLOW}&flow=other", "flow") == FLOW
    assert go_oracle.query_get(f"a=1;b=2&flow={FLOW}", "flow") == FLOW
    assert go_oracle.query_get(f"flow=%zz&flow={FLOW}", "flow") == FLOW
    assert go_oracle.query_get("flow=a+b%2B", "flow") == "a b+"


def test_batches_answer_in_order(go_oracle: GoOracle) -> None:
    values = [f"User{i}@Example.com" for i in range(3000)]
    answers = go_oracle.many("identifier", [{"value": v} for v in values])
    assert [a.normalized for a in answers] == [v.lower() for v in values]


def test_bytes_that_are_not_utf8_round_trip(go_oracle: GoOracle) -> None:
    assert go_oracle.unescape("/a%ff") == "/a\udcff"
