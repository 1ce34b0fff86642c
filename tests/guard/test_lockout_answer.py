"""The lockout answer says only what is true: the flow a blocked caller sees carries the
lockout message and no longer the previous attempt's "credentials are invalid" (that password
was never checked), and stays a valid ``loginFlow``."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from proxy.guard.flows import lockout_message, with_message
from tests.conftest import Kratos
from tests.guard.client import PASSWORD, api_flow, browser_flow, fetch_flow, submit
from tests.guard.conftest import Guarded
from tests.kratos_standin import LoginFlow, StandinState, validate
from tests.kratos_standin.bodies import invalid_credentials, login_flow, missing_property

LOCKOUT = 4000901
INVALID = 4000006
NOT_VERIFIED = {"id": 4000010, "text": "Account not active yet.", "type": "error"}
ONE_WRONG = {"BACKOFF_PAIR_FREE": "1", "BACKOFF_PAIR_BASE": "30"}


def kratos_flow(**messages: Any) -> dict[str, Any]:
    """A browser login flow as the stand-in (and Kratos) renders it, with these messages."""
    now = datetime.now(UTC)
    flow = LoginFlow(
        id="3c90c3cc-0d44-4b50-8888-8dd25736052a",
        type="browser",
        stage="password",
        issued_at=now,
        expires_at=now + timedelta(hours=1),
        request_url="http://127.0.0.1:4433/self-service/login/browser",
        csrf_token="csrf-token-value",
        identifier="alice@example.com",
        **messages,
    )
    body = login_flow(flow, StandinState())
    validate("loginFlow", body)
    return body


def ids(flow: dict[str, Any]) -> list[int]:
    return [m["id"] for m in flow["ui"].get("messages", [])]


def without_messages(flow: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(flow)
    out["ui"].pop("messages", None)
    for each in out["ui"]["nodes"]:
        each["messages"] = []
        if each["attributes"].get("name") == "csrf_token":
            each["attributes"]["value"] = "<masked>"
    return out


def node(flow: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in flow["ui"]["nodes"] if n["attributes"].get("name") == name)


def test_credential_rejections_are_dropped_everything_else_is_kept() -> None:
    flow = kratos_flow(
        messages=[invalid_credentials(), NOT_VERIFIED],
        node_messages={
            "password": [invalid_credentials()],
            "identifier": [missing_property("identifier")],
        },
    )
    message = lockout_message(LOCKOUT, 30)
    shown = with_message(flow, message, drop_ids=frozenset({INVALID}))

    validate("loginFlow", shown)
    assert ids(shown) == [4000010, LOCKOUT]
    assert shown["ui"]["messages"][-1] == message
    assert node(shown, "password")["messages"] == []
    assert [m["id"] for m in node(shown, "identifier")["messages"]] == [4000002]
    assert node(shown, "csrf_token")["attributes"]["value"] == "csrf-token-value"
    assert node(shown, "identifier")["attributes"]["value"] == "alice@example.com"
    # Only the messages differ: every other field and node is Kratos' own.
    assert {k: v for k, v in shown.items() if k != "ui"} == {
        k: v for k, v in flow.items() if k != "ui"
    }
    assert [n["attributes"] for n in shown["ui"]["nodes"]] == [
        n["attributes"] for n in flow["ui"]["nodes"]
    ]
    assert ids(flow) == [INVALID, 4000010]  # pure: the input is untouched


def test_the_ids_to_drop_are_the_callers_and_an_earlier_lockout_is_replaced() -> None:
    totp = {"id": 4000008, "text": "The provided authentication code is invalid.", "type": "error"}
    flow = kratos_flow(messages=[invalid_credentials(), totp, lockout_message(LOCKOUT, 60)])
    again = with_message(flow, lockout_message(LOCKOUT, 30), drop_ids=frozenset({4000008}))
    assert ids(again) == [INVALID, LOCKOUT]  # 4000006 is not in this caller's ids
    assert again["ui"]["messages"][-1]["context"]["retry_after_seconds"] == 30
    both = with_message(flow, lockout_message(LOCKOUT, 30), drop_ids=frozenset({INVALID, 4000008}))
    assert ids(both) == [LOCKOUT]
    validate("loginFlow", both)
    # A flow without messages anywhere gets just the lockout.
    assert ids(with_message(kratos_flow(), lockout_message(LOCKOUT, 5), drop_ids=())) == [LOCKOUT]


async def test_a_blocked_json_caller_sees_the_lockout_and_not_the_earlier_rejection(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(**ONE_WRONG)
    flow = await api_flow(http, svc.public_url)
    rejected = await submit(http, svc.public_url, flow, "alice@example.com")
    assert rejected.status == 400 and ids(rejected.json()) == [INVALID]
    # The right password this time, held back unchecked: the answer must not call it wrong.
    blocked = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)
    assert kratos.state.count("POST", "/self-service/login") == 1
    assert blocked.status == 400
    body = blocked.json()
    validate("loginFlow", body)
    assert body["id"] == flow.id
    assert ids(body) == [LOCKOUT]
    assert all(not n["messages"] for n in body["ui"]["nodes"])
    # Kratos' own flow still carries the rejection: only the guard's answer leaves it out.
    assert INVALID in ids((await fetch_flow(http, kratos.public_url, flow)).json())


async def test_a_blocked_browser_refetching_its_flow_sees_only_the_lockout(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(**ONE_WRONG)
    flow = await browser_flow(http, svc.public_url)
    rejected = await submit(http, svc.public_url, flow, "alice@example.com", form=True)
    assert rejected.status == 303
    assert ids((await fetch_flow(http, svc.public_url, flow)).json()) == [INVALID]

    blocked = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD, form=True)
    assert blocked.status == 303
    assert kratos.state.count("POST", "/self-service/login") == 1
    shown = await fetch_flow(http, svc.public_url, flow)
    assert shown.status == 200
    body = shown.json()
    validate("loginFlow", body)
    assert ids(body) == [LOCKOUT]
    assert all(not n["messages"] for n in body["ui"]["nodes"])
    # Everything but the messages is Kratos' own (the CSRF token is masked anew per fetch).
    direct = (await fetch_flow(http, kratos.public_url, flow)).json()
    assert INVALID in ids(direct)
    assert node(body, "csrf_token")["attributes"]["value"]
    assert without_messages(body) == without_messages(direct)
