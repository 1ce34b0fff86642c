"""The guard judges the request Kratos acts on: every spelling of the login route, of an
identifier, of a media type and of a flow id that Kratos (here: the stand-in, which routes
and normalises with Go's own libraries through the oracle) reads as the same thing is judged
as that thing. Each test counts what reached the stand-in's password check."""

from __future__ import annotations

from urllib.parse import urlencode

import aiohttp
import orjson
import pytest

from tests.conftest import Kratos, Service
from tests.guard.client import PASSWORD, Flow, api_flow, browser_flow, submit
from tests.guard.conftest import Guarded

LOGIN = "/self-service/login"
# Pair bucket: five failures are free, then each waits; nothing else intervenes.
SETTINGS = {"BACKOFF_PAIR_FREE": "5", "BACKOFF_IP_FREE": "10000", "RATE_LIMIT_LOGIN": "0"}


async def raw_post(
    svc: Service, target: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, bytes]:
    """A POST with the exact target and Content-Type bytes (UTF-8 allowed in the header)."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", svc.running.public_port)
    head = (
        f"POST {target} HTTP/1.1\r\nHost: auth.example.com\r\nContent-Type: {content_type}\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        writer.write(head.encode("utf-8") + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def wrong(identifier: str) -> bytes:
    return orjson.dumps({"method": "password", "identifier": identifier, "password": "wrong"})


PATH_FORMS = [
    "//self-service/login",
    "/self-service/./login",
    "/x/../self-service/login",
    "/self-service/%2e/login",
    "/self-service/login/../login",
    "/self-service%2Flogin",
    "/self-service/login/",  # Kratos redirects these two: nothing to check, never a bypass
    "/SELF-SERVICE/LOGIN",
]


async def test_every_path_kratos_routes_to_login_is_guarded(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(**SETTINGS)
    checks: dict[str, int] = {}
    for number, path in enumerate([LOGIN, *PATH_FORMS]):
        email = f"user{number}@example.com"
        identity = kratos.state.add_identity(email, PASSWORD)
        flow = await api_flow(http, svc.public_url)
        for _ in range(25):
            await raw_post(svc, f"{path}?flow={flow.id}", wrong(email))
        checks[path] = kratos.state.password_checks[identity["id"]]
    assert checks[LOGIN] == 5
    routed = {path: n for path, n in checks.items() if not path.endswith(("/", "LOGIN"))}
    assert routed == dict.fromkeys(routed, 5), checks  # judged exactly like the plain path
    assert checks["/self-service/login/"] == checks["/SELF-SERVICE/LOGIN"] == 0


IDENTIFIER_FORMS = [
    "alice\u200b@example.com",  # zero-width space
    "ali\u200dce@example.com",  # zero-width joiner
    "\ufeffalice@example.com",  # byte-order mark
    "al\u00adice@example.com",  # soft hyphen
    "alice\x00@example.com",
    "alice\x1f@example.com",  # a C0 control
    "alice\x85@example.com",  # a C1 control
    "alice@example.com\u202e",  # a bidi override
    "\uff21\uff2c\uff29\uff23\uff25@example.com",  # full width ALICE
    "ALICE@EXAMPLE.COM",
    " " * 511 + "alice@example.com",  # trimmed first, bounded after
]


async def test_identifiers_kratos_reads_as_alice_share_her_buckets(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(**SETTINGS)
    alice = kratos.state.add_identity("alice@example.com", PASSWORD)
    flow = await api_flow(http, svc.public_url)
    for identifier in IDENTIFIER_FORMS:
        for _ in range(4):
            await submit(http, svc.public_url, flow, identifier)
    # Every form is alice's: four of them fail freely once, then all of them wait.
    assert kratos.state.password_checks[alice["id"]] == 5
    assert len(IDENTIFIER_FORMS) * 4 > 5


async def test_a_locked_account_stays_locked_for_a_padded_identifier(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(**SETTINGS)
    kratos.state.add_identity("alice@example.com", PASSWORD)
    flow = await api_flow(http, svc.public_url)
    for _ in range(6):
        await submit(http, svc.public_url, flow, "alice@example.com")
    padded = " " * 511 + "alice@example.com"
    answer = await submit(http, svc.public_url, flow, padded, PASSWORD)
    assert answer.status in (400, 429)
    assert "session_token" not in answer.json()


async def test_phone_number_spellings_share_one_bucket(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(**SETTINGS)
    phone = kratos.state.add_identity("+14155552671", PASSWORD)
    flow = await api_flow(http, svc.public_url)
    for identifier in ["+1 (415) 555-2671", "+14155552671", "+1-415-555-2671", "+1 415 555 2671"]:
        for _ in range(3):
            await submit(http, svc.public_url, flow, identifier)
    assert kratos.state.password_checks[phone["id"]] == 5


@pytest.mark.parametrize(
    "content_type",
    [
        "applİcation/json",
        "APPLICATION/JSON",
        "application/json ; charset=utf-8",
        " application/JSON",
    ],
)
async def test_media_types_go_reads_as_json_are_judged(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession, content_type: str
) -> None:
    svc = await guarded(**SETTINGS)
    alice = kratos.state.add_identity("alice@example.com", PASSWORD)
    flow = await api_flow(http, svc.public_url)
    for _ in range(20):
        await raw_post(svc, f"{LOGIN}?flow={flow.id}", wrong("alice@example.com"), content_type)
    assert kratos.state.password_checks[alice["id"]] == 5


def _flow_spellings(flow_id: str) -> list[str]:
    return [flow_id.upper(), "{" + flow_id + "}", "urn:uuid:" + flow_id, flow_id.replace("-", "")]


async def test_flow_id_spellings_of_a_browser_flow_are_counted(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(**SETTINGS)
    alice = kratos.state.add_identity("alice@example.com", PASSWORD)
    flow = await browser_flow(http, svc.public_url)
    assert flow.cookie is not None and flow.csrf is not None
    spellings = _flow_spellings(flow.id)
    for spelling in spellings:
        for _ in range(5):
            body = urlencode(
                {
                    "method": "password",
                    "identifier": "alice@example.com",
                    "password": "wrong",
                    "csrf_token": flow.csrf,
                }
            )
            async with http.post(
                f"{svc.public_url}{LOGIN}?flow={spelling}",
                data=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "text/html",
                    "Cookie": flow.cookie,
                },
                allow_redirects=False,
            ) as response:
                assert response.status == 303
    # Kratos answered each failure with a redirect to the canonical id: all were counted.
    assert kratos.state.password_checks[alice["id"]] == 5
    fresh = Flow(flow.id, flow.cookie, flow.csrf)
    assert (await submit(http, svc.public_url, fresh, "alice@example.com", form=True)).status == 303
    assert kratos.state.password_checks[alice["id"]] == 5  # still waiting


async def test_a_secret_in_the_query_is_judged_like_one_in_the_body(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(**SETTINGS)
    alice = kratos.state.add_identity("alice@example.com", PASSWORD)
    flow = await api_flow(http, svc.public_url)
    for _ in range(6):
        await submit(http, svc.public_url, flow, "alice@example.com")
    checked = kratos.state.password_checks[alice["id"]]
    kratos.state.reset_calls()
    query = urlencode({"flow": flow.id, "method": "password", "identifier": "alice@example.com"})
    secret = urlencode({"password": PASSWORD})
    async with http.get(
        f"{svc.public_url}{LOGIN}?{query}&{secret}", headers={"Accept": "application/json"}
    ) as response:
        assert response.status in (400, 429)  # held like the body's attempts, not forwarded
    async with http.post(
        f"{svc.public_url}{LOGIN}?{secret}",
        data=orjson.dumps({"method": "password", "identifier": "alice@example.com"}),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    ) as response:
        assert response.status in (400, 429)
    assert kratos.state.count("GET", LOGIN) == kratos.state.count("POST", LOGIN) == 0
    assert kratos.state.password_checks[alice["id"]] == 0
    assert checked == 5


async def test_submission_windows_hold_on_every_path_kratos_routes_there(
    guarded: Guarded, kratos: Kratos, http: aiohttp.ClientSession
) -> None:
    svc = await guarded(RATE_LIMIT_REGISTRATION="2")
    flow = await api_flow(http, svc.public_url, "registration")
    statuses = []
    for path in [
        "/self-service/registration",
        "//self-service/registration",
        "/self-service/./registration",
        "/x/../self-service/registration",
    ]:
        status, _ = await raw_post(svc, f"{path}?flow={flow.id}", b'{"method":"password"}')
        statuses.append(status)
    assert statuses[2:] == [400, 400]  # refused with the flow, never forwarded
    assert [r.method for r in kratos.state.requests].count("POST") == 2
