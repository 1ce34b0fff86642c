"""A login client for the functional tests: flows and submissions through the proxy, the
way a browser, an SPA and a native app make them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from proxy.guard.core import Guard
from tests.conftest import Kratos, Service, ServiceFactory

PASSWORD = "correct horse battery staple"


@dataclass
class Flow:
    id: str
    cookie: str | None = None  # the CSRF cookie a browser flow set
    csrf: str | None = None


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def start(
    start_service: ServiceFactory, kratos: Kratos, redis_url: str | None, prefix: str, **env: str
) -> Service:
    """The service in front of the stand-in, with the guard's store on ``redis_url``."""
    settings: dict[str, str] = {
        "KRATOS_PUBLIC_URL": kratos.public_url,
        "KRATOS_ADMIN_URL": kratos.admin_url,
        "REDIS_KEY_PREFIX": prefix,
        "BACKOFF_SECRET": "test-secret",
    }
    if redis_url:
        settings["REDIS_URL"] = redis_url
    svc = await start_service(**(settings | env))
    kratos.state.public_base_url = svc.public_url
    return svc


def guards(svc: Service) -> list[Guard]:
    """The process's guard (both listeners share it), to inject a clock."""
    return [svc.running.shared.guard]


async def api_flow(http: aiohttp.ClientSession, base: str, kind: str = "login") -> Flow:
    async with http.get(f"{base}/self-service/{kind}/api") as response:
        assert response.status == 200
        return Flow((await response.json())["id"])


async def browser_flow(http: aiohttp.ClientSession, base: str, kind: str = "login") -> Flow:
    headers = {"Accept": "application/json"}
    async with http.get(f"{base}/self-service/{kind}/browser", headers=headers) as response:
        assert response.status == 200
        flow = await response.json()
        cookie = response.headers["Set-Cookie"].partition(";")[0]
    csrf = next(
        n["attributes"]["value"]
        for n in flow["ui"]["nodes"]
        if n["attributes"].get("name") == "csrf_token"
    )
    return Flow(flow["id"], cookie, csrf)


async def submit(
    http: aiohttp.ClientSession,
    base: str,
    flow: Flow,
    identifier: str,
    password: str = "wrong",
    *,
    form: bool = False,
    accept: str | None = None,
    forwarded_for: str | None = None,
    extra: dict[str, str] | None = None,
) -> Answer:
    """A password submission: JSON by default, else a browser's urlencoded form post."""
    fields = {"method": "password", "identifier": identifier, "password": password}
    if flow.csrf:
        fields["csrf_token"] = flow.csrf
    fields |= extra or {}
    headers: dict[str, str] = {}
    if form:
        body = urlencode(fields).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["Accept"] = accept or "text/html,application/xhtml+xml,*/*;q=0.8"
    else:
        body = orjson.dumps(fields)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = accept or "application/json"
    if flow.cookie:
        headers["Cookie"] = flow.cookie
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    url = f"{base}/self-service/login?flow={flow.id}"
    async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
        return Answer(response.status, response.headers, await response.read())


async def post(
    http: aiohttp.ClientSession,
    base: str,
    kind: str,
    flow: Flow,
    fields: dict[str, str],
    *,
    form: bool = False,
) -> Answer:
    """A submission to another self-service flow, as a browser form post or JSON."""
    fields = {"csrf_token": flow.csrf, **fields} if flow.csrf else dict(fields)
    if form:
        body = urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"}
    else:
        body = orjson.dumps(fields)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if flow.cookie:
        headers["Cookie"] = flow.cookie
    url = f"{base}/self-service/{kind}?flow={flow.id}"
    async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
        return Answer(response.status, response.headers, await response.read())


async def fetch_flow(
    http: aiohttp.ClientSession, base: str, flow: Flow, kind: str = "login"
) -> Answer:
    headers = {"Accept": "application/json"}
    if flow.cookie:
        headers["Cookie"] = flow.cookie
    url = f"{base}/self-service/{kind}/flows?id={flow.id}"
    async with http.get(url, headers=headers) as response:
        return Answer(response.status, response.headers, await response.read())


def lockout_messages(flow: dict[str, Any], message_id: int = 4000901) -> list[dict[str, Any]]:
    return [m for m in flow["ui"].get("messages", []) if m["id"] == message_id]
