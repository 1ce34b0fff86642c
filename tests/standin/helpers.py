"""Small helpers for driving the stand-in like a browser or a native app would."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from aiohttp import ClientResponse
from yarl import URL

from tests.kratos_standin import StandinState, validate

JSON = "application/json"


def set_cookies(resp: ClientResponse) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in resp.headers.getall("Set-Cookie", []):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(header)
        jar.update({name: morsel.value for name, morsel in parsed.items()})
    return jar


def cookie_header(cookies: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def flow_id_from(location: str) -> str:
    return URL(location).query["flow"]


def csrf_value(flow: dict[str, Any]) -> str:
    for node in flow["ui"]["nodes"]:
        if node["attributes"]["name"] == "csrf_token":
            return str(node["attributes"]["value"])
    raise AssertionError("flow has no csrf_token node")


def node(flow: dict[str, Any], name: str) -> dict[str, Any]:
    for candidate in flow["ui"]["nodes"]:
        if candidate["attributes"]["name"] == name:
            return dict(candidate)
    raise AssertionError(f"flow has no {name} node")


async def json_of(resp: ClientResponse, schema: str | None = None) -> Any:
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    body = await resp.json()
    if schema is not None:
        validate(schema, body)
    return body


async def browser_flow(client: Any, state: StandinState) -> tuple[dict[str, Any], dict[str, str]]:
    """Start a browser flow in JSON mode; return the flow and the cookies a browser would hold."""
    resp = await client.get("/self-service/login/browser", headers={"Accept": JSON})
    assert resp.status == 200
    cookies = set_cookies(resp)
    assert state.csrf_cookie_name in cookies
    return await json_of(resp, "loginFlow"), cookies


async def api_flow(client: Any) -> dict[str, Any]:
    resp = await client.get("/self-service/login/api")
    assert resp.status == 200
    assert "Set-Cookie" not in resp.headers
    body: dict[str, Any] = await json_of(resp, "loginFlow")
    return body
