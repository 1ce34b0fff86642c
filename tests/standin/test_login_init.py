"""Starting and fetching login flows."""

from __future__ import annotations

import hashlib

from tests.kratos_standin import StandinState

from .conftest import Client
from .helpers import (
    JSON,
    api_flow,
    browser_flow,
    cookie_header,
    csrf_value,
    flow_id_from,
    json_of,
    set_cookies,
)


async def test_health_endpoints(public: Client, admin: Client) -> None:
    for client in (public, admin):
        for path in ("/health/alive", "/health/ready"):
            resp = await client.get(path)
            assert resp.status == 200
            assert await json_of(resp, "healthStatus") == {"status": "ok"}


async def test_unknown_route_is_go_style_404(public: Client) -> None:
    resp = await public.get("/nope")
    assert resp.status == 404
    assert await resp.text() == "404 page not found\n"


async def test_plain_browser_init_redirects_to_ui_with_csrf_cookie(
    public: Client, state: StandinState
) -> None:
    resp = await public.get("/self-service/login/browser", allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith("http://127.0.0.1:3000/login?flow=")
    flow_id = flow_id_from(location)
    assert flow_id in state.flows
    digest = hashlib.sha256(b"http://127.0.0.1:4433").hexdigest()
    assert state.csrf_cookie_name == f"csrf_token_{digest}"
    [header] = resp.headers.getall("Set-Cookie")
    assert header.startswith(f"csrf_token_{digest}=")
    assert header.endswith("; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax")


async def test_json_browser_init_returns_the_flow(public: Client, state: StandinState) -> None:
    flow, cookies = await browser_flow(public, state)
    assert flow["type"] == "browser"
    assert flow["state"] == "choose_method"
    assert flow["ui"]["action"] == f"http://127.0.0.1:4433/self-service/login?flow={flow['id']}"
    assert flow["ui"]["method"] == "POST"
    names = [n["attributes"]["name"] for n in flow["ui"]["nodes"]]
    assert names == ["csrf_token", "identifier", "password", "method"]
    assert csrf_value(flow) != cookies[state.csrf_cookie_name]  # masked, not the raw token
    assert flow["request_url"].endswith("/self-service/login/browser")


async def test_browser_init_reuses_a_valid_csrf_cookie(public: Client, state: StandinState) -> None:
    _, cookies = await browser_flow(public, state)
    resp = await public.get(
        "/self-service/login/browser",
        headers={"Accept": JSON, "Cookie": cookie_header(cookies)},
    )
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers


async def test_init_stores_return_to_refresh_and_aal(public: Client) -> None:
    resp = await public.get(
        "/self-service/login/api", params={"return_to": "http://app/x", "refresh": "true"}
    )
    flow = await json_of(resp, "loginFlow")
    assert flow["return_to"] == "http://app/x"
    assert flow["refresh"] is True
    assert flow["requested_aal"] == "aal1"


async def test_request_url_honours_forwarded_headers(public: Client) -> None:
    resp = await public.get(
        "/self-service/login/api",
        headers={"X-Forwarded-Host": "auth.example.com", "X-Forwarded-Proto": "https"},
    )
    flow = await json_of(resp, "loginFlow")
    assert flow["request_url"] == "https://auth.example.com/self-service/login/api"


async def test_api_init_has_no_csrf_node(public: Client) -> None:
    flow = await api_flow(public)
    assert flow["type"] == "api"
    assert [n["attributes"]["name"] for n in flow["ui"]["nodes"]] == [
        "identifier",
        "password",
        "method",
    ]


async def test_get_flow_returns_it_with_the_csrf_cookie(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    resp = await public.get(
        "/self-service/login/flows",
        params={"id": flow["id"]},
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 200
    assert (await json_of(resp, "loginFlow"))["id"] == flow["id"]


async def test_get_browser_flow_without_csrf_cookie_is_403(
    public: Client, state: StandinState
) -> None:
    flow, _ = await browser_flow(public, state)
    resp = await public.get("/self-service/login/flows", params={"id": flow["id"]})
    assert resp.status == 403
    body = await json_of(resp, "errorGeneric")
    assert body["error"]["id"] == "security_csrf_violation"
    assert body["error"]["code"] == 403


async def test_get_unknown_flow_is_404(public: Client) -> None:
    resp = await public.get(
        "/self-service/login/flows",
        params={"id": "00000000-0000-4000-8000-000000000000"},
        headers={"X-Request-ID": "req-1"},
    )
    assert resp.status == 404
    body = await json_of(resp, "errorGeneric")
    assert body == {
        "error": {
            "code": 404,
            "status": "Not Found",
            "request": "req-1",
            "reason": "Unable to locate the resource",
            "message": "The requested resource could not be found",
        }
    }


async def test_get_expired_flow_is_410(public: Client, state: StandinState) -> None:
    flow = await api_flow(public)
    state.expire_flow(flow["id"])
    resp = await public.get("/self-service/login/flows", params={"id": flow["id"]})
    assert resp.status == 410
    body = await json_of(resp, "selfServiceFlowExpiredError")
    assert body["error"]["id"] == "self_service_flow_expired"
    assert body["error"]["details"]["api"] == "http://127.0.0.1:4433/self-service/login/api"


async def test_get_expired_browser_flow_points_back_to_init(
    public: Client, state: StandinState
) -> None:
    flow, cookies = await browser_flow(public, state)
    state.expire_flow(flow["id"])
    resp = await public.get(
        "/self-service/login/flows",
        params={"id": flow["id"]},
        headers={"Cookie": cookie_header(cookies)},
    )
    assert resp.status == 410
    body = await json_of(resp, "errorGeneric")
    assert body["error"]["details"]["redirect_to"].endswith("/self-service/login/browser")


async def test_browser_init_with_a_session_redirects_or_errors(
    public: Client, state: StandinState
) -> None:
    identity_id = next(iter(state.identities))
    _, cookie_value = state.create_session(identity_id)
    cookie = cookie_header({state.session_cookie_name: cookie_value})
    resp = await public.get(
        "/self-service/login/browser", headers={"Cookie": cookie}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == state.default_return_to
    resp = await public.get(
        "/self-service/login/browser", headers={"Cookie": cookie, "Accept": JSON}
    )
    assert resp.status == 400
    body = await json_of(resp, "errorGeneric")
    assert body["error"]["id"] == "session_already_available"
    # refresh=true is the way to log in again.
    resp = await public.get(
        "/self-service/login/browser",
        params={"refresh": "true"},
        headers={"Cookie": cookie, "Accept": JSON},
    )
    assert resp.status == 200


async def test_aal2_init_needs_a_session(public: Client, state: StandinState) -> None:
    resp = await public.get("/self-service/login/api", params={"aal": "aal2"})
    assert resp.status == 401
    assert (await json_of(resp, "errorGeneric"))["error"]["id"] == "session_aal1_required"
    token, _ = state.create_session(next(iter(state.identities)))
    resp = await public.get(
        "/self-service/login/api", params={"aal": "aal2"}, headers={"X-Session-Token": token}
    )
    flow = await json_of(resp, "loginFlow")
    assert flow["requested_aal"] == "aal2"
    assert [n["attributes"]["name"] for n in flow["ui"]["nodes"]] == ["totp_code", "method"]


async def test_identifier_first_style_shows_only_the_identifier(
    public: Client, state: StandinState
) -> None:
    state.login_style = "identifier_first"
    flow = await api_flow(public)
    nodes = {n["attributes"]["name"]: n for n in flow["ui"]["nodes"]}
    assert set(nodes) == {"identifier", "method"}
    assert nodes["method"]["attributes"]["value"] == "identifier_first"


async def test_cookies_helper_sees_every_set_cookie(public: Client, state: StandinState) -> None:
    resp = await public.get("/self-service/login/browser", allow_redirects=False)
    assert set(set_cookies(resp)) == {state.csrf_cookie_name}
