"""Registration, recovery and verification flows: started and fetched as Kratos does."""

from __future__ import annotations

import pytest

from .conftest import Client
from .helpers import JSON, cookie_header, flow_id_from, json_of, set_cookies

KINDS = {
    "registration": "registrationFlow",
    "recovery": "recoveryFlow",
    "verification": "verificationFlow",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_api_flow_starts_and_is_fetched_by_id(public: Client, kind: str) -> None:
    resp = await public.get(f"/self-service/{kind}/api")
    assert resp.status == 200
    flow = await json_of(resp, KINDS[kind])
    assert flow["type"] == "api"
    assert flow["ui"]["action"].endswith(f"/self-service/{kind}?flow={flow['id']}")
    again = await public.get(f"/self-service/{kind}/flows", params={"id": flow["id"]})
    assert again.status == 200
    assert (await json_of(again, KINDS[kind]))["id"] == flow["id"]


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_plain_browser_is_sent_to_the_ui_and_json_mode_carries_csrf(
    public: Client, kind: str
) -> None:
    resp = await public.get(f"/self-service/{kind}/browser", allow_redirects=False)
    assert resp.status == 303
    flow_id = flow_id_from(resp.headers["Location"])
    cookies = set_cookies(resp)
    assert any(name.startswith("csrf_token") for name in cookies)
    fetched = await public.get(
        f"/self-service/{kind}/flows",
        params={"id": flow_id},
        headers={"Cookie": cookie_header(cookies), "Accept": JSON},
    )
    flow = await json_of(fetched, KINDS[kind])
    assert flow["type"] == "browser"
    names = [node["attributes"].get("name") for node in flow["ui"]["nodes"]]
    assert "csrf_token" in names


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_unknown_flow_is_404_in_error_shape(public: Client, kind: str) -> None:
    resp = await public.get(f"/self-service/{kind}/flows", params={"id": "nope"})
    assert resp.status in {404, 410}
    body = await json_of(resp)
    assert body["error"]["code"] == resp.status
