"""Submitting login flows: success, rejected credentials, second factor, CSRF, expiry."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import FormData

from tests.kratos_standin import StandinState, validate

from .conftest import ALICE, BOB, Client
from .helpers import (
    api_flow,
    browser_flow,
    cookie_header,
    csrf_value,
    flow_id_from,
    json_of,
    node,
    set_cookies,
)

INVALID = (
    "The provided credentials are invalid, check for spelling mistakes in your password "
    "or username, email address, or phone number."
)


def creds(email: str, password: str, **extra: Any) -> dict[str, Any]:
    return {"method": "password", "identifier": email, "password": password, **extra}


async def submit(client: Client, flow: dict[str, Any], **kwargs: Any) -> Any:
    return await client.post(
        "/self-service/login", params={"flow": flow["id"]}, allow_redirects=False, **kwargs
    )


async def test_api_success_returns_token_and_session_without_cookie(
    public: Client, state: StandinState
) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, json=creds(*ALICE))
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers
    body = await json_of(resp, "successfulNativeLogin")
    assert body["session_token"].startswith("ory_st_")
    assert body["continue_with"] == []
    session = body["session"]
    assert session["identity"]["traits"]["email"] == ALICE[0]
    assert "metadata_admin" not in session["identity"]
    assert "credentials" not in session["identity"]
    assert session["authentication_methods"][0]["method"] == "password"
    assert state.session_by_token(body["session_token"]) is not None


async def test_browser_json_success_sets_csrf_and_session_cookies(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await submit(
        public,
        flow,
        json=creds(*ALICE, csrf_token=csrf_value(flow)),
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 200
    body = await json_of(resp, "successfulNativeLogin")
    assert set(body) == {"session", "continue_with"}
    headers = resp.headers.getall("Set-Cookie")
    assert len(headers) == 2
    assert headers[0].startswith(state.csrf_cookie_name + "=")
    session_header = headers[1]
    assert session_header.startswith("ory_kratos_session=")
    assert "; Path=/; Expires=" in session_header
    assert session_header.endswith("; Max-Age=86400; HttpOnly; SameSite=Lax")
    new = set_cookies(resp)
    assert new[state.csrf_cookie_name] != cookies[state.csrf_cookie_name]  # rotated
    assert state.session_by_cookie(new["ory_kratos_session"]) is not None


async def test_plain_browser_form_success_redirects_to_return_to(
    public: Client, state: StandinState
) -> None:
    resp = await public.get(
        "/self-service/login/browser",
        params={"return_to": "http://127.0.0.1:3000/dashboard"},
        allow_redirects=False,
    )
    cookies = set_cookies(resp)
    flow = state.flows[flow_id_from(resp.headers["Location"])]
    form = creds(*ALICE, csrf_token=flow.csrf_token)
    resp = await public.post(
        "/self-service/login",
        params={"flow": flow.id},
        data=form,
        headers={"Cookie": cookie_header(cookies)},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "http://127.0.0.1:3000/dashboard"
    assert "ory_kratos_session" in set_cookies(resp)


async def test_multipart_body_is_accepted(public: Client, state: StandinState) -> None:
    flow = await api_flow(public)
    form = FormData(creds(*ALICE), default_to_multipart=True)
    resp = await submit(public, flow, data=form)
    assert state.requests[-1].headers["Content-Type"].startswith("multipart/form-data")
    assert resp.status == 200


async def test_wrong_password_in_json_mode_is_400_with_the_flow(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, json=creds(ALICE[0], "wrong"))
    assert resp.status == 400
    body = await json_of(resp, "loginFlow")
    assert body["id"] == flow["id"]
    assert body["ui"]["messages"] == [{"id": 4000006, "type": "error", "text": INVALID}]
    assert node(body, "identifier")["attributes"]["value"] == ALICE[0]


async def test_unknown_user_looks_the_same_and_waits_as_long(
    public: Client, state: StandinState
) -> None:
    state.hash_delay = 0.05
    flow = await api_flow(public)
    started = time.monotonic()
    resp = await submit(public, flow, json=creds("nobody@example.com", "whatever"))
    assert time.monotonic() - started >= 0.05
    assert resp.status == 400
    body = await json_of(resp, "loginFlow")
    assert body["ui"]["messages"][0]["id"] == 4000006


async def test_plain_browser_failure_redirects_to_ui_and_keeps_the_message(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await submit(
        public,
        flow,
        data=creds(ALICE[0], "wrong", csrf_token=csrf_value(flow)),
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 303
    assert resp.headers["Location"] == f"http://127.0.0.1:3000/login?flow={flow['id']}"
    assert "Set-Cookie" not in resp.headers
    resp = await public.get(
        "/self-service/login/flows",
        params={"id": flow["id"]},
        headers={"Cookie": cookie_header(cookies)},
    )
    body = await json_of(resp, "loginFlow")
    assert body["ui"]["messages"][0]["id"] == 4000006
    assert csrf_value(body) != csrf_value(flow)  # re-masked, same cookie token


async def test_json_content_type_alone_turns_on_json_mode(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await submit(
        public,
        flow,
        json=creds(ALICE[0], "wrong", csrf_token=csrf_value(flow)),
        headers={"Cookie": cookie_header(cookies), "Accept": "text/html"},
    )
    assert resp.status == 400
    await json_of(resp, "loginFlow")


async def test_missing_fields_are_node_messages(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, json={"method": "password", "identifier": ALICE[0]})
    assert resp.status == 400
    body = await json_of(resp, "loginFlow")
    assert node(body, "password")["messages"][0]["id"] == 4000002


async def test_password_identifier_alias_works(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(
        public,
        flow,
        json={"method": "password", "password_identifier": ALICE[0], "password": ALICE[1]},
    )
    assert resp.status == 200


async def test_unknown_method_finds_no_strategy(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, json={"method": "webauthn", "identifier": ALICE[0]})
    assert resp.status == 400
    body = await json_of(resp, "loginFlow")
    assert body["ui"]["messages"][0]["id"] == 4010002


async def test_unsupported_content_type_is_400(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, data=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status == 400
    await json_of(resp, "errorGeneric")


async def test_transient_payload_is_kept_on_the_flow(public: Client, state: StandinState) -> None:
    flow = await api_flow(public)
    payload = {"device": "ios"}
    await submit(public, flow, json=creds(ALICE[0], "nope", transient_payload=payload))
    assert state.flows[flow["id"]].transient_payload == payload


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "http://evil.example"}, {"Cookie": "session=abc"}],
    ids=["origin", "cookie"],
)
async def test_api_flow_refuses_browser_looking_requests(
    public: Client, headers: dict[str, str]
) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, json=creds(*ALICE), headers=headers)
    assert resp.status == 400
    body = await json_of(resp, "errorGeneric")
    assert "Browser" in body["error"]["reason"]


async def test_api_flow_ignores_cloudflare_cookies(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(
        public, flow, json=creds(*ALICE), headers={"Cookie": "__cf_bm=1; _cfuvid=2; cf_x=3"}
    )
    assert resp.status == 200


async def test_csrf_mismatch_is_403_in_json_mode(public: Client, state: StandinState) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await submit(
        public,
        flow,
        json=creds(*ALICE, csrf_token="bogus"),
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 403
    body = await json_of(resp, "errorGeneric")
    assert body["error"]["id"] == "security_csrf_violation"


async def test_csrf_mismatch_sends_a_browser_to_the_error_ui(
    public: Client, state: StandinState
) -> None:
    flow, _ = await browser_flow(public, state)
    resp = await submit(public, flow, data=creds(*ALICE, csrf_token=csrf_value(flow)))
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith("http://127.0.0.1:3000/error?id=")
    error_id = location.rsplit("=", 1)[1]
    resp = await public.get("/self-service/errors", params={"id": error_id})
    body = await json_of(resp, "flowError")
    assert body["error"]["id"] == "security_csrf_violation"


async def test_second_factor_in_json_mode_is_422_with_a_session_cookie(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await submit(
        public,
        flow,
        json=creds(*BOB, csrf_token=csrf_value(flow)),
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 422
    body = await json_of(resp, "errorBrowserLocationChangeRequired")
    assert body["error"]["id"] == "browser_location_change_required"
    step_up_id = flow_id_from(body["redirect_browser_to"])
    assert state.flows[step_up_id].requested_aal == "aal2"
    new = set_cookies(resp)
    session = state.session_by_cookie(new["ory_kratos_session"])
    assert session is not None and session.aal == "aal1"

    # Finishing the second factor upgrades that session.
    step_up = state.flows[step_up_id]
    jar = {**cookies, **new}
    resp = await public.post(
        "/self-service/login",
        params={"flow": step_up_id},
        json={"method": "totp", "totp_code": state.totp_code, "csrf_token": step_up.csrf_token},
        headers={"Cookie": cookie_header(jar)},
    )
    assert resp.status == 200
    body = await json_of(resp, "successfulNativeLogin")
    assert body["session"]["authenticator_assurance_level"] == "aal2"


async def test_second_factor_for_a_plain_browser_redirects_to_the_ui(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await submit(
        public,
        flow,
        data=creds(*BOB, csrf_token=csrf_value(flow)),
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 303
    step_up_id = flow_id_from(resp.headers["Location"])
    assert state.flows[step_up_id].stage == "totp"


async def test_wrong_totp_code_is_a_node_message(public: Client, state: StandinState) -> None:
    token, _ = state.create_session(state.find_by_identifier(BOB[0]) or "")
    resp = await public.get(
        "/self-service/login/api", params={"aal": "aal2"}, headers={"X-Session-Token": token}
    )
    flow = await resp.json()
    resp = await submit(
        public,
        flow,
        json={"method": "totp", "totp_code": "000000"},
        headers={"X-Session-Token": token},
    )
    assert resp.status == 400
    body = await json_of(resp, "loginFlow")
    assert node(body, "totp_code")["messages"][0]["id"] == 4000008


async def test_expired_flow_submit_is_410_with_a_replacement(
    public: Client, state: StandinState
) -> None:
    flow = await api_flow(public)
    state.expire_flow(flow["id"])
    resp = await submit(public, flow, json=creds(*ALICE))
    assert resp.status == 410
    body = await json_of(resp, "selfServiceFlowExpiredError")
    assert body["error"]["id"] == "self_service_flow_expired"
    assert body["error"]["message"] == "self-service flow expired"
    assert body["since"] > 0
    replacement = state.flows[body["use_flow_id"]]
    assert replacement.messages[0]["id"] == 4010001


async def test_expired_flow_sends_a_browser_to_a_new_flow(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    state.expire_flow(flow["id"])
    resp = await submit(
        public,
        flow,
        data=creds(*ALICE, csrf_token=csrf_value(flow)),
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 303
    new_id = flow_id_from(resp.headers["Location"])
    assert new_id != flow["id"]
    resp = await public.get(
        "/self-service/login/flows",
        params={"id": new_id},
        headers={"Cookie": cookie_header(cookies)},
    )
    body = await json_of(resp, "loginFlow")
    assert body["ui"]["messages"][0]["id"] == 4010001


async def test_unknown_flow_submit_is_404(public: Client) -> None:
    resp = await public.post(
        "/self-service/login",
        params={"flow": "00000000-0000-4000-8000-000000000000"},
        json=creds(*ALICE),
    )
    assert resp.status == 404
    await json_of(resp, "errorGeneric")


async def test_inactive_identity_with_right_password_is_401(
    public: Client, state: StandinState
) -> None:
    state.set_identity_state(state.find_by_identifier(ALICE[0]) or "", "inactive")
    flow = await api_flow(public)
    resp = await submit(public, flow, json=creds(*ALICE))
    assert resp.status == 401
    body = await json_of(resp, "errorGeneric")
    assert body["error"]["message"] == "identity is disabled"


async def test_identifier_first_step_then_password(public: Client, state: StandinState) -> None:
    state.login_style = "identifier_first"
    flow = await api_flow(public)
    resp = await submit(public, flow, json={"method": "identifier_first", "identifier": ALICE[0]})
    assert resp.status == 400
    body = await json_of(resp, "loginFlow")
    assert "messages" not in body["ui"]
    assert node(body, "identifier")["attributes"]["type"] == "hidden"
    assert node(body, "password")["attributes"]["type"] == "password"
    resp = await submit(public, flow, json=creds(*ALICE))
    assert resp.status == 200


async def test_identifier_first_needs_that_style(public: Client) -> None:
    flow = await api_flow(public)
    resp = await submit(public, flow, json={"method": "identifier_first", "identifier": ALICE[0]})
    body = await json_of(resp, "loginFlow")
    assert body["ui"]["messages"][0]["id"] == 4010002


async def test_logged_in_api_client_cannot_submit_again(
    public: Client, state: StandinState
) -> None:
    flow = await api_flow(public)
    token = (await (await submit(public, flow, json=creds(*ALICE))).json())["session_token"]
    flow = await api_flow(public)
    resp = await submit(public, flow, json=creds(*ALICE), headers={"X-Session-Token": token})
    assert resp.status == 400
    body = await json_of(resp, "errorGeneric")
    assert body["error"]["id"] == "session_already_available"


async def test_every_call_is_recorded(public: Client, state: StandinState) -> None:
    state.reset_calls()
    flow = await api_flow(public)
    await submit(public, flow, json=creds(*ALICE), headers={"X-Request-ID": "abc"})
    assert state.count("GET", "/self-service/login/api") == 1
    assert state.count("POST", "/self-service/login") == 1
    last = state.requests[-1]
    assert last.app == "public"
    assert last.path_qs == f"/self-service/login?flow={flow['id']}"
    assert last.headers["X-Request-ID"] == "abc"
    assert b"correct horse" in last.body
    validate("loginFlow", flow)
