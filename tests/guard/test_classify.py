"""What a submission is and what Kratos' answer says about the secret, case by case."""

from __future__ import annotations

import gzip

import orjson
import pytest

from proxy.guard.classify import (
    answers_json,
    back_to_flow,
    classify,
    json_mode,
    negotiates_json,
    parse_submission,
)
from proxy.guard.flows import decoded
from proxy.guard.policy import Outcome

FLOW = "6f1e2b5c-0000-4000-8000-000000000001"
UI = "https://app.example/login"
SESSION = "ory_kratos_session=MTY5; Path=/; Expires=Tue, 24 Nov 2026 19:00:00 GMT; HttpOnly"
CSRF = "csrf_token_abc=xyz; Path=/; HttpOnly"


def flow_body(*, ui_ids: tuple[int, ...] = (), node_ids: tuple[int, ...] = ()) -> bytes:
    messages = [{"id": i, "text": "…", "type": "error"} for i in ui_ids]
    node_messages = [{"id": i, "text": "…", "type": "error"} for i in node_ids]
    return orjson.dumps(
        {
            "id": FLOW,
            "ui": {
                "action": "x",
                "method": "POST",
                "messages": messages,
                "nodes": [{"type": "input", "messages": node_messages}],
            },
        }
    )


def outcome(
    status: int,
    *,
    cookies: tuple[str, ...] = (),
    location: str | None = None,
    body: bytes | None = None,
) -> Outcome:
    return classify(
        status,
        set_cookies=cookies,
        location=location,
        body=body,
        flow_id=FLOW,
        session_cookie="ory_kratos_session",
        failure_ids=frozenset({4000006, 4000008}),
    )


CASES = [
    # --- a session was issued
    (
        "api 200 with session_token",
        200,
        (),
        None,
        b'{"session_token":"ory_st_x","session":{}}',
        Outcome.SUCCESS,
    ),
    (
        "json 200 with session and cookie",
        200,
        (CSRF, SESSION),
        None,
        b'{"session":{}}',
        Outcome.SUCCESS,
    ),
    (
        "browser 303 with the session cookie",
        303,
        (CSRF, SESSION),
        "https://app.example/",
        None,
        Outcome.SUCCESS,
    ),
    (
        "json 422 second factor required",
        422,
        (SESSION,),
        None,
        b'{"error":{"id":"browser_location_change_required","code":422},"redirect_browser_to":"x"}',
        Outcome.SUCCESS,
    ),
    # --- credentials rejected
    ("json 400 flow with 4000006", 400, (), None, flow_body(ui_ids=(4000006,)), Outcome.FAILURE),
    (
        "json 400 flow with a node 4000008",
        400,
        (),
        None,
        flow_body(node_ids=(4000008,)),
        Outcome.FAILURE,
    ),
    ("browser 303 back to the same flow", 303, (), f"{UI}?flow={FLOW}", None, Outcome.FAILURE),
    # --- says nothing about the secret
    ("json 400 missing field", 400, (), None, flow_body(node_ids=(4000002,)), Outcome.NOT_COUNTED),
    ("json 400 no strategy", 400, (), None, flow_body(ui_ids=(4010002,)), Outcome.NOT_COUNTED),
    (
        "json 400 browser-made api request",
        400,
        (),
        None,
        b'{"error":{"code":400,"reason":"made by a Browser"}}',
        Outcome.NOT_COUNTED,
    ),
    (
        "json 410 expired flow",
        410,
        (),
        None,
        b'{"error":{"id":"self_service_flow_expired","code":410},"use_flow_id":"n"}',
        Outcome.NOT_COUNTED,
    ),
    (
        "browser 303 to a new flow (expired)",
        303,
        (CSRF,),
        f"{UI}?flow=another",
        None,
        Outcome.NOT_COUNTED,
    ),
    (
        "json 403 csrf",
        403,
        (),
        None,
        b'{"error":{"id":"security_csrf_violation","code":403}}',
        Outcome.NOT_COUNTED,
    ),
    (
        "browser 303 to the error ui (csrf)",
        303,
        (),
        "https://app.example/error?id=e1",
        None,
        Outcome.NOT_COUNTED,
    ),
    ("json 401 disabled identity", 401, (), None, b'{"error":{"code":401}}', Outcome.NOT_COUNTED),
    ("json 422 other", 422, (), None, b'{"error":{"id":"something_else"}}', Outcome.NOT_COUNTED),
    ("500", 500, (), None, b'{"error":{"code":500}}', Outcome.NOT_COUNTED),
    ("502 from the proxy", 502, (), None, None, Outcome.NOT_COUNTED),
    ("200 without any session", 200, (CSRF,), None, b'{"ui":{}}', Outcome.NOT_COUNTED),
    (
        "303 clearing the session cookie",
        303,
        ("ory_kratos_session=; Path=/; Max-Age=0",),
        f"{UI}?flow=other",
        None,
        Outcome.NOT_COUNTED,
    ),
    ("400 unreadable body", 400, (), None, b"<html>", Outcome.NOT_COUNTED),
    ("400 body not read", 400, (), None, None, Outcome.NOT_COUNTED),
]


@pytest.mark.parametrize(
    ("status", "cookies", "location", "body", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_outcome(
    status: int,
    cookies: tuple[str, ...],
    location: str | None,
    body: bytes | None,
    expected: Outcome,
) -> None:
    assert outcome(status, cookies=cookies, location=location, body=body) is expected


def test_a_renamed_session_cookie_is_recognised() -> None:
    result = classify(
        303,
        set_cookies=["my_sess=abc; Path=/"],
        location="/",
        body=None,
        flow_id=FLOW,
        session_cookie="my_sess",
        failure_ids=frozenset({4000006}),
    )
    assert result is Outcome.SUCCESS


def test_compressed_answers_are_read() -> None:
    body = flow_body(ui_ids=(4000006,))
    assert decoded(gzip.compress(body), "gzip") == body
    assert decoded(body, None) == body
    assert decoded(b"\x00garbage", "gzip") is None
    assert decoded(body, "br") is None


# --- the submission ---------------------------------------------------------------------


def test_json_submission() -> None:
    raw = b'{"method":"password","identifier":"Alice@Example.com","password":"x"}'
    sub = parse_submission("application/json", raw)
    assert sub is not None
    assert (sub.method, sub.identifier, sub.has_secret) == ("password", "Alice@Example.com", True)


def test_form_submission_with_the_deprecated_identifier_field() -> None:
    raw = b"csrf_token=t&method=password&password_identifier=bob%40example.com&password=pw"
    sub = parse_submission("application/x-www-form-urlencoded; charset=utf-8", raw)
    assert sub is not None and sub.identifier == "bob@example.com" and sub.has_secret


FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "raw",
    [
        b"method=password&identifier=decoy&identifier=victim&password=pw",
        b"method=password&password_identifier=a&password_identifier=b&password=pw",
        b"method=password&method=totp&identifier=a&password=pw",
        b"method=password&identifier=a&password=one&password=two",
    ],
)
def test_a_login_field_with_two_values_cannot_be_judged(raw: bytes) -> None:
    # Whichever copy Kratos reads, a guard reading the other could be steered by a decoy.
    assert parse_submission(FORM, raw) is None


def test_a_repeated_field_with_one_value_or_outside_the_login_is_fine() -> None:
    raw = b"method=password&method=password&identifier=a&password=pw&csrf_token=1&csrf_token=2"
    sub = parse_submission(FORM, raw)
    assert sub is not None and (sub.method, sub.identifier) == ("password", "a")


def _multipart(boundary: str, parts: list[tuple[str, str]]) -> bytes:
    return (
        b"".join(
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in parts
        )
        + f"--{boundary}--\r\n".encode()
    )


def test_multipart_submission() -> None:
    parts = [("method", "password"), ("identifier", "çarol@example.com"), ("password", "pw")]
    raw = _multipart("----b0undary", parts)
    sub = parse_submission("multipart/form-data; boundary=----b0undary", raw)
    assert sub is not None
    assert (sub.method, sub.identifier, sub.has_secret) == ("password", "çarol@example.com", True)


def test_multipart_with_two_identifiers_cannot_be_judged() -> None:
    raw = _multipart("b", [("method", "password"), ("identifier", "decoy"), ("identifier", "v")])
    assert parse_submission("multipart/form-data; boundary=b", raw) is None


def test_identifier_first_and_empty_passwords_check_no_secret() -> None:
    first = parse_submission("application/json", b'{"method":"identifier_first","identifier":"a"}')
    assert first is not None and first.method == "identifier_first"
    empty = parse_submission("application/json", b'{"method":"password","identifier":"a"}')
    assert empty is not None and not empty.has_secret


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [("application/json", b"{not json"), ("application/json", b"[1,2]"), ("text/plain", b"x")],
)
def test_unreadable_submissions(content_type: str, raw: bytes) -> None:
    assert parse_submission(content_type, raw) is None


# --- JSON mode, as Kratos decides it ------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "accept", "expected"),
    [
        ("application/json", None, True),
        ("application/json; charset=utf-8", None, False),  # Kratos compares the raw header
        ("application/x-www-form-urlencoded", "application/json", True),
        ("application/x-www-form-urlencoded", "text/html,application/xhtml+xml,*/*;q=0.8", False),
        ("application/x-www-form-urlencoded", "*/*", False),
        ("application/x-www-form-urlencoded", None, False),
        ("application/x-www-form-urlencoded", "application/json, text/html;q=0.9", True),
        ("application/x-www-form-urlencoded", "application/*", True),
        ("application/x-www-form-urlencoded", "text/html;q=0, application/json;q=0.1", True),
    ],
)
def test_json_mode(content_type: str, accept: str | None, expected: bool) -> None:
    assert json_mode(content_type, accept) is expected


def test_negotiation_ignores_garbage() -> None:
    assert negotiates_json("application/json;q=abc") is False


@pytest.mark.parametrize(
    ("content_type", "accept", "cookies", "expected"),
    [
        ("application/json; charset=utf-8", None, True, True),  # an app, whatever Kratos says
        ("application/x-www-form-urlencoded", None, False, True),  # no cookie: an API flow
        ("application/x-www-form-urlencoded", "text/html", True, False),  # a browser
        ("multipart/form-data; boundary=x", "*/*", True, False),
    ],
)
def test_the_guard_answers_apps_in_json(
    content_type: str, accept: str | None, cookies: bool, expected: bool
) -> None:
    assert answers_json(content_type, accept, cookies) is expected


def test_back_to_flow_names_the_ui_only_for_the_same_flow() -> None:
    assert back_to_flow(f"{UI}?flow={FLOW}", FLOW) == UI
    assert back_to_flow(f"{UI}?x=1&flow={FLOW}", FLOW) == UI
    assert back_to_flow(f"{UI}?flow=another", FLOW) is None  # an expired flow's replacement
    assert back_to_flow("https://app.example/error?id=e1", FLOW) is None  # CSRF
    assert back_to_flow("https://app.example/", FLOW) is None  # return_to after a success
    assert back_to_flow(None, FLOW) is None
    assert back_to_flow(f"{UI}?flow=", "") is None
