"""Plain per-IP windows on self-service posts, and the compatibility endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from tests.conftest import Kratos
from tests.guard.client import (
    api_flow,
    browser_flow,
    fetch_flow,
    lockout_messages,
    submit,
)
from tests.guard.conftest import Guarded

BASE = "/hooks/kratos/login-backoff"


async def test_registration_posts_are_limited_per_ip(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(RATE_LIMIT_REGISTRATION="2")
    url = f"{svc.public_url}/self-service/registration?flow=f1"
    statuses = []
    for _ in range(3):
        async with http.post(url, json={"method": "password"}) as response:
            statuses.append(response.status)
            last_headers, last_body = response.headers, await response.read()
    assert kratos.state.count("POST", "/self-service/registration") == 2
    assert statuses[2] == 429
    assert int(last_headers["Retry-After"]) >= 1
    assert orjson.loads(last_body)["error"]["id"] == "login_backoff"


async def test_login_has_a_raw_rate_on_top_of_the_backoff(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(RATE_LIMIT_LOGIN="3")
    flow = await api_flow(http, svc.public_url)
    answers = [await submit(http, svc.public_url, flow, f"user{i}@example.com") for i in range(4)]
    assert kratos.state.count("POST", "/self-service/login") == 3
    (message,) = lockout_messages(answers[3].json())
    assert "Too many requests" in message["text"]


async def test_a_browser_held_by_the_login_rate_sees_the_rate_wording_in_its_flow(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(RATE_LIMIT_LOGIN="2")
    flow = await browser_flow(http, svc.public_url)
    for i in range(3):
        answer = await submit(http, svc.public_url, flow, f"user{i}@example.com", form=True)
        assert answer.status == 303
    assert kratos.state.count("POST", "/self-service/login") == 2
    (message,) = lockout_messages((await fetch_flow(http, svc.public_url, flow)).json())
    assert "Too many requests" in message["text"]  # not the failed-attempts wording


async def test_before_login_counts_and_after_login_forgives(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_PAIR_FREE="2")
    before = f"{svc.internal_url}{BASE}/before-login"
    after = f"{svc.internal_url}{BASE}/after-login"
    who = {"identifier": "Carol@Example.com", "client_ip": "192.0.2.10", "flow_id": "f-1"}
    answers = []
    for _ in range(3):
        async with http.post(before, json=who) as response:
            answers.append((response.status, await response.json()))
    assert answers[0] == (200, {"allowed": True, "retry_after_seconds": 0})
    assert answers[1][0] == 200
    status, refused = answers[2]
    assert status == 403
    assert refused["allowed"] is False and refused["reason"] == "identifier"
    assert refused["retry_after_seconds"] >= 1
    assert "before trying again" in refused["message"]
    async with http.post(after, json={"identifier": "carol@example.com"}) as response:
        assert response.status == 200 and (await response.json())["reset"] is True
    async with http.post(before, json=who) as response:
        assert response.status == 200


async def test_before_login_blocks_an_address_trying_many_accounts(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_IP_FREE="3")
    before = f"{svc.internal_url}{BASE}/before-login"
    statuses = []
    for i in range(4):
        body = {"identifier": f"user{i}@example.com", "client_ip": "2001:db8::1"}
        async with http.post(before, json=body) as response:
            statuses.append(response.status)
            last = await response.json()
    assert statuses == [200, 200, 200, 403]
    assert last["reason"] == "ip"


async def test_compatibility_endpoints_reject_malformed_bodies(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded()
    before = f"{svc.internal_url}{BASE}/before-login"
    for body in (b"[]", b"{", b'{"identifier": 5}', b'{"client_ip": "not an ip"}'):
        async with http.post(before, data=body) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == 400


async def test_compatibility_endpoints_require_the_hook_credentials_when_set(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(HOOKS_API_KEYS="k1,k2")
    before = f"{svc.internal_url}{BASE}/before-login"
    body = {"identifier": "x@example.com"}
    async with http.post(before, json=body) as response:
        assert response.status == 401
    async with http.post(before, json=body, headers={"X-Kratos-Hooks-Key": "k2"}) as response:
        assert response.status == 200


async def test_compatibility_endpoints_bound_their_bodies(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(MAX_BODY_SIZE="2048")
    before = f"{svc.internal_url}{BASE}/before-login"
    padded = b'{"identifier": "x@example.com", "pad": "' + b"y" * 4096 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start_at in range(0, len(padded), 512):
            yield padded[start_at : start_at + 512]

    for body in (padded, chunks()):
        async with http.post(before, data=body) as response:
            assert response.status == 413
            assert (await response.json())["error"]["code"] == 413
    async with http.post(before, json={"identifier": "x@example.com"}) as response:
        assert response.status == 200  # a call within the bound is still served
        assert (await response.json())["allowed"] is True
