"""/sessions/whoami and logout."""

from __future__ import annotations

import pytest

from tests.kratos_standin import StandinState

from .conftest import ALICE, BOB, Client
from .helpers import JSON, cookie_header, json_of, set_cookies

UNAUTHORIZED = {
    "error": {
        "code": 401,
        "status": "Unauthorized",
        "reason": "No valid session credentials found in the request.",
        "message": "The request could not be authorized",
    }
}


def alice(state: StandinState) -> str:
    identity_id = state.find_by_identifier(ALICE[0])
    assert identity_id is not None
    return identity_id


# Current Kratos registers whoami on every method but DELETE (/sessions/* owns that one).
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH"])
async def test_whoami_answers_any_method(public: Client, state: StandinState, method: str) -> None:
    token, _ = state.create_session(alice(state))
    resp = await public.request(method, "/sessions/whoami", headers={"X-Session-Token": token})
    assert resp.status == 200
    assert resp.headers["X-Kratos-Authenticated-Identity-Id"] == alice(state)
    body = await json_of(resp, "session")
    assert body["identity"]["id"] == alice(state)
    assert body["active"] is True
    assert "metadata_admin" not in body["identity"]


@pytest.mark.parametrize("where", ["token", "cookie", "bearer"])
async def test_whoami_reads_each_credential(
    public: Client, state: StandinState, where: str
) -> None:
    token, cookie = state.create_session(alice(state))
    headers = {
        "token": {"X-Session-Token": token},
        "cookie": {"Cookie": f"ory_kratos_session={cookie}"},
        "bearer": {"Authorization": f"Bearer {token}"},
    }[where]
    resp = await public.get("/sessions/whoami", headers=headers)
    assert resp.status == 200


async def test_whoami_prefers_the_session_token_header(public: Client, state: StandinState) -> None:
    _, cookie = state.create_session(alice(state))
    resp = await public.get(
        "/sessions/whoami",
        headers={"X-Session-Token": "ory_st_invalid", "Cookie": f"ory_kratos_session={cookie}"},
    )
    assert resp.status == 401


async def test_whoami_without_credentials_is_the_exact_401(public: Client) -> None:
    resp = await public.get("/sessions/whoami")
    assert resp.status == 401
    assert await json_of(resp, "errorGeneric") == UNAUTHORIZED
    resp = await public.get("/sessions/whoami", headers={"X-Request-ID": "r-9"})
    assert (await resp.json())["error"]["request"] == "r-9"


async def test_whoami_fails_once_the_identity_is_inactive(
    public: Client, state: StandinState
) -> None:
    token, _ = state.create_session(alice(state))
    state.set_identity_state(alice(state), "inactive")
    resp = await public.get("/sessions/whoami", headers={"X-Session-Token": token})
    assert resp.status == 401


async def test_whoami_fails_after_the_session_expires(public: Client, state: StandinState) -> None:
    token, _ = state.create_session(alice(state))
    later = state.now() + state.session_lifespan
    state.now = lambda: later
    resp = await public.get("/sessions/whoami", headers={"X-Session-Token": token})
    assert resp.status == 401


async def test_whoami_asks_for_aal2_when_required(public: Client, state: StandinState) -> None:
    state.require_aal2 = True
    bob = state.find_by_identifier(BOB[0]) or ""
    token, _ = state.create_session(bob)
    resp = await public.get("/sessions/whoami", headers={"X-Session-Token": token})
    assert resp.status == 403
    body = await json_of(resp, "errorAuthenticatorAssuranceLevelNotSatisfied")
    assert body["error"]["id"] == "session_aal2_required"
    expected = "http://127.0.0.1:4433/self-service/login/browser?aal=aal2"
    assert body["error"]["details"]["redirect_browser_to"] == expected
    assert body["redirect_browser_to"] == expected
    token2, _ = state.create_session(bob, aal="aal2")
    resp = await public.get("/sessions/whoami", headers={"X-Session-Token": token2})
    assert (await json_of(resp, "session"))["authenticator_assurance_level"] == "aal2"


async def test_api_logout_revokes_the_token(public: Client, state: StandinState) -> None:
    token, _ = state.create_session(alice(state))
    resp = await public.delete("/self-service/logout/api", json={"session_token": token})
    assert resp.status == 204
    resp = await public.get("/sessions/whoami", headers={"X-Session-Token": token})
    assert resp.status == 401
    resp = await public.delete("/self-service/logout/api", json={"session_token": token})
    assert resp.status == 403
    await json_of(resp, "errorGeneric")


async def test_api_logout_rejects_a_bad_body(public: Client) -> None:
    for body in (b"nope", b"{}"):
        resp = await public.delete(
            "/self-service/logout/api", data=body, headers={"Content-Type": JSON}
        )
        assert resp.status == 400
        await json_of(resp, "errorGeneric")


async def test_browser_logout_flow(public: Client, state: StandinState) -> None:
    resp = await public.get("/self-service/logout/browser")
    assert resp.status == 401
    await json_of(resp, "errorGeneric")

    _, cookie = state.create_session(alice(state))
    jar = cookie_header({"ory_kratos_session": cookie})
    resp = await public.get(
        "/self-service/logout/browser",
        params={"return_to": "http://127.0.0.1:3000/bye"},
        headers={"Cookie": jar},
    )
    body = await json_of(resp, "logoutFlow")
    assert body["logout_token"].startswith("ory_lo_")
    assert body["logout_url"].startswith("http://127.0.0.1:4433/self-service/logout?token=")

    resp = await public.get(
        "/self-service/logout",
        params={"token": body["logout_token"], "return_to": "http://127.0.0.1:3000/bye"},
        headers={"Cookie": jar},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "http://127.0.0.1:3000/bye"
    [cleared] = resp.headers.getall("Set-Cookie")
    assert cleared.startswith("ory_kratos_session=; Path=/;")
    assert "Max-Age=0" in cleared
    assert set_cookies(resp) == {"ory_kratos_session": ""}
    resp = await public.get("/sessions/whoami", headers={"Cookie": jar})
    assert resp.status == 401


async def test_logout_token_in_json_mode_is_204(public: Client, state: StandinState) -> None:
    _, cookie = state.create_session(alice(state))
    jar = cookie_header({"ory_kratos_session": cookie})
    flow = await (await public.get("/self-service/logout/browser", headers={"Cookie": jar})).json()
    resp = await public.get(
        "/self-service/logout",
        params={"token": flow["logout_token"]},
        headers={"Cookie": jar, "Accept": JSON},
    )
    assert resp.status == 204


async def test_logout_with_the_wrong_token_is_refused(public: Client, state: StandinState) -> None:
    _, cookie = state.create_session(alice(state))
    jar = cookie_header({"ory_kratos_session": cookie})
    resp = await public.get(
        "/self-service/logout",
        params={"token": "ory_lo_wrong"},
        headers={"Cookie": jar, "Accept": JSON},
    )
    assert resp.status == 403
    await json_of(resp, "errorGeneric")
    resp = await public.get("/self-service/logout", headers={"Accept": JSON})
    assert resp.status == 400
    resp = await public.get("/sessions/whoami", headers={"Cookie": jar})
    assert resp.status == 200
