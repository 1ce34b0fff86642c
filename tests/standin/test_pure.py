"""The stand-in's pure policy: negotiation, CSRF tokens, JSON Patch, cookies, schemas."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.kratos_standin import SchemaMismatchError, csrf, validate
from tests.kratos_standin.cookies import clear_cookie, set_cookie
from tests.kratos_standin.jsonpatch import PatchError, apply_patch
from tests.kratos_standin.negotiation import negotiate
from tests.kratos_standin.timefmt import rfc3339


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", "text/html"),
        ("*/*", "text/html"),
        ("application/json", "application/json"),
        ("application/json, text/plain, */*", "application/json"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("application/*", "application/json"),
        ("application/json;q=0", "text/html"),
    ],
)
def test_negotiation_matches_gddo(accept: str, expected: str) -> None:
    assert negotiate(accept) == expected


def test_masked_csrf_tokens_differ_but_verify() -> None:
    token = csrf.new_token()
    first, second = csrf.mask(token), csrf.mask(token)
    assert first != second
    assert csrf.verify(token, first) and csrf.verify(token, second)
    assert csrf.verify(token, csrf.encode_cookie(token))  # unmasked form also accepted
    assert not csrf.verify(csrf.new_token(), first)
    assert not csrf.verify(token, "not base64!")
    assert not csrf.verify(None, first)
    assert csrf.decode_cookie(csrf.encode_cookie(token)) == token
    assert csrf.decode_cookie("c2hvcnQ=") is None


def test_json_patch_applies_to_a_copy() -> None:
    doc = {"a": {"b": [1, 2]}, "n": None}
    out = apply_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "replace", "path": "/a/b/1", "value": 9},
            {"op": "remove", "path": "/a/b/3"},
            {"op": "add", "path": "/x~1y", "value": "slash"},
        ],
    )
    assert out == {"a": {"b": [0, 9, 2]}, "n": None, "x/y": "slash"}
    assert doc == {"a": {"b": [1, 2]}, "n": None}


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "add", "path": "/n/x", "value": 1}],
        [{"op": "remove", "path": "/zzz"}],
        [{"op": "replace", "path": "/a/b/7", "value": 1}],
        [{"op": "add", "path": "/a"}],
        [{"op": "copy", "from": "/a", "path": "/c"}],
        [{"op": "add", "path": "/id", "value": 1}],
        [{"op": "add", "path": "nope", "value": 1}],
    ],
)
def test_json_patch_refusals(patch: object) -> None:
    with pytest.raises(PatchError):
        apply_patch({"a": {"b": [1]}, "n": None}, patch, denied=("/id",))


def test_cookie_strings_follow_go() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert set_cookie("s", "v", expires=at, max_age=60) == (
        "s=v; Path=/; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Max-Age=60; HttpOnly; SameSite=Lax"
    )
    assert clear_cookie("s") == (
        "s=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0; HttpOnly; SameSite=Lax"
    )


def test_timestamps_trim_like_go() -> None:
    assert rfc3339(datetime(2030, 1, 2, tzinfo=UTC)) == "2030-01-02T00:00:00Z"
    assert rfc3339(datetime(2030, 1, 2, 0, 0, 0, 120000, tzinfo=UTC)) == "2030-01-02T00:00:00.12Z"


def test_schema_validation_handles_nullable_and_errata() -> None:
    validate(
        "uiNodeInputAttributes",
        {"name": "x", "type": "text", "disabled": False, "node_type": "input", "value": None},
    )
    validate(
        "errorAuthenticatorAssuranceLevelNotSatisfied",
        {"error": {"message": "m", "details": {"redirect_browser_to": "u"}}},
    )
    validate(
        "errorBrowserLocationChangeRequired",
        {
            "error": {"id": "browser_location_change_required", "message": "m"},
            "redirect_browser_to": "u",
        },
    )
    with pytest.raises(SchemaMismatchError):
        validate("session", {"id": "not-a-uuid"})
    with pytest.raises(SchemaMismatchError):
        validate("loginFlow", {"id": "3c1ee7a4-56a5-4f4e-9b3a-1c51f4b1bd8b"})
    with pytest.raises(KeyError):
        validate("noSuchSchema", {})
