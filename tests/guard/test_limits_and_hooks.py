"""Plain per-IP windows on self-service posts, and the compatibility endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from tests.conftest import Kratos, Service
from tests.guard.client import (
    PASSWORD,
    api_flow,
    browser_flow,
    fetch_flow,
    lockout_messages,
    submit,
)
from tests.guard.conftest import Guarded

BASE = "/hooks/kratos/login-backoff"
KEY = "compat-key-0123456789"
AUTH = {"X-Kratos-Hooks-Key": KEY}


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


async def compat(
    http: aiohttp.ClientSession,
    svc: Service,
    endpoint: str,
    body: object,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    """A call to ``before-login`` / ``after-login`` with ``headers`` (the hook key by default)."""
    url = f"{svc.internal_url}{BASE}/{endpoint}"
    sent = AUTH if headers is None else headers
    async with http.post(url, data=orjson.dumps(body), headers=sent) as response:
        return response.status, orjson.loads(await response.read())


async def test_before_login_counts_and_after_login_forgives(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_PAIR_FREE="2", HOOKS_API_KEYS=KEY)
    who = {"identifier": "Carol@Example.com", "client_ip": "192.0.2.10", "flow_id": "f-1"}
    answers = [await compat(http, svc, "before-login", who) for _ in range(3)]
    assert answers[0] == (200, {"allowed": True, "retry_after_seconds": 0})
    assert answers[1][0] == 200
    status, refused = answers[2]
    assert status == 403
    assert refused["allowed"] is False and refused["reason"] == "identifier"
    assert isinstance(refused["retry_after_seconds"], int) and refused["retry_after_seconds"] >= 1
    assert "before trying again" in str(refused["message"])
    forgiven = await compat(http, svc, "after-login", {"identifier": "carol@example.com"})
    assert forgiven == (200, {"reset": True})
    assert (await compat(http, svc, "before-login", who))[0] == 200


async def test_before_login_blocks_an_address_trying_many_accounts(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_IP_FREE="3", HOOKS_API_KEYS=KEY)
    answers = [
        await compat(
            http,
            svc,
            "before-login",
            {"identifier": f"user{i}@example.com", "client_ip": "2001:db8::1"},
        )
        for i in range(4)
    ]
    assert [status for status, _ in answers] == [200, 200, 200, 403]
    assert answers[3][1]["reason"] == "ip"


async def test_compatibility_endpoints_reject_malformed_bodies(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(HOOKS_API_KEYS=KEY)
    before = f"{svc.internal_url}{BASE}/before-login"
    for body in (b"[]", b"{", b'{"identifier": 5}', b'{"client_ip": "not an ip"}'):
        async with http.post(before, data=body, headers=AUTH) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == 400


async def test_without_hook_credentials_nobody_can_forgive_or_lock_an_account(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    """No key configured: the endpoints answer 503 naming the setting, like every other hook,
    and neither clear a locked account's buckets nor count an attempt against another."""
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(BACKOFF_PAIR_FREE="2")
    flow = await api_flow(http, svc.public_url)
    for _ in range(3):
        await submit(http, svc.public_url, flow, "alice@example.com")
    assert kratos.state.count("POST", "/self-service/login") == 2  # alice is held

    status, body = await compat(http, svc, "after-login", {"identifier": "alice@example.com"})
    assert status == 503
    error = body["error"]
    assert isinstance(error, dict) and error["id"] == "hook_not_configured"
    assert "HOOKS_API_KEYS" in str(error["reason"])
    for _ in range(5):  # would lock bob out if it counted
        status, _ = await compat(http, svc, "before-login", {"identifier": "bob@example.com"})
        assert status == 503

    still = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)
    assert lockout_messages(still.json())  # not forgiven: the right password waits too
    assert kratos.state.count("POST", "/self-service/login") == 2
    bob = await submit(http, svc.public_url, flow, "bob@example.com")
    assert bob.status == 400 and not lockout_messages(bob.json())
    assert kratos.state.count("POST", "/self-service/login") == 3


async def test_compatibility_endpoints_require_the_hook_credentials(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(HOOKS_API_KEYS="k1,k2", HOOKS_BASIC_AUTH="kratos:pw")
    for endpoint in ("before-login", "after-login"):
        body = {"identifier": "x@example.com"}
        for wrong in (
            {},
            {"X-Kratos-Hooks-Key": "k3"},
            {"Authorization": "Basic a3JhdG9zOnB3Mg=="},
        ):
            status, answer = await compat(http, svc, endpoint, body, wrong)
            assert status == 401, (endpoint, wrong)
            error = answer["error"]
            assert isinstance(error, dict) and error["code"] == 401
        assert (await compat(http, svc, endpoint, body, {"X-Kratos-Hooks-Key": "k2"}))[0] == 200
        basic = {"Authorization": "Basic a3JhdG9zOnB3"}  # kratos:pw
        assert (await compat(http, svc, endpoint, body, basic))[0] == 200


async def test_insecure_mode_serves_the_compatibility_endpoints_without_credentials(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(HOOKS_INSECURE_NO_AUTH="true")
    status, body = await compat(http, svc, "before-login", {"identifier": "x@example.com"}, {})
    assert (status, body) == (200, {"allowed": True, "retry_after_seconds": 0})


async def test_compatibility_endpoints_bound_their_bodies_like_the_hooks(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    # The service-wide bound stays large: HOOKS_MAX_BODY_SIZE is the one that applies.
    svc = await guarded(HOOKS_API_KEYS=KEY, HOOKS_MAX_BODY_SIZE="1024", MAX_BODY_SIZE="1048576")
    padded = b'{"identifier": "x@example.com", "pad": "' + b"y" * 4096 + b'"}'

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start_at in range(0, len(padded), 512):
            yield padded[start_at : start_at + 512]

    for endpoint in ("before-login", "after-login"):
        url = f"{svc.internal_url}{BASE}/{endpoint}"
        for body in (padded, chunks()):
            async with http.post(url, data=body, headers=AUTH) as response:
                assert response.status == 413, endpoint
                assert (await response.json())["error"]["code"] == 413
    status, answer = await compat(http, svc, "before-login", {"identifier": "x@example.com"})
    assert (status, answer["allowed"]) == (200, True)  # a call within the bound is served
