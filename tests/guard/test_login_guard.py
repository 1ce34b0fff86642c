"""The guard through the real public listener, real Redis and the Kratos stand-in: what
reaches Kratos (its call counter) and what the caller sees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson

from tests.conftest import Kratos
from tests.guard.client import (
    PASSWORD,
    api_flow,
    browser_flow,
    fetch_flow,
    lockout_messages,
    submit,
)
from tests.guard.conftest import Guarded
from tests.kratos_standin import validate

LOGIN = "/self-service/login"
# "alice@example.com" in full-width forms (U+FF01..U+FF5E mirror ASCII 0x21..0x7E).
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "alice@example.com")
SMALL = {"BACKOFF_PAIR_FREE": "3", "BACKOFF_IDENTIFIER_FREE": "5", "BACKOFF_PAIR_BASE": "30"}


def reached(kratos: Kratos) -> int:
    return kratos.state.count("POST", LOGIN)


async def test_wrong_passwords_are_held_back_with_the_flow_and_a_wait(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(**SMALL)
    flow = await api_flow(http, svc.public_url)
    answers = [await submit(http, svc.public_url, flow, "alice@example.com") for _ in range(5)]
    assert [a.status for a in answers] == [400] * 5
    assert reached(kratos) == 3  # the pair bucket's free attempts; the rest never left
    for rejected in answers[:3]:
        assert [m["id"] for m in rejected.json()["ui"]["messages"]] == [4000006]
    blocked = answers[3]
    body = blocked.json()
    validate("loginFlow", body)
    assert body["id"] == flow.id
    (message,) = lockout_messages(body)
    assert message["type"] == "error"
    retry = int(blocked.headers["Retry-After"])
    assert 25 <= retry <= 30
    assert f"wait {retry} seconds" in message["text"]
    assert message["context"]["retry_after_seconds"] == retry


async def test_unknown_accounts_are_answered_the_same_way(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(**SMALL)
    texts = []
    for identifier in ("alice@example.com", "nobody@example.com"):
        flow = await api_flow(http, svc.public_url)
        for _ in range(3):
            await submit(http, svc.public_url, flow, identifier)
        blocked = await submit(http, svc.public_url, flow, identifier)
        texts.append(
            (blocked.status, blocked.headers["Retry-After"], lockout_messages(blocked.json()))
        )
    assert texts[0] == texts[1]


async def test_success_is_relayed_unchanged_and_forgives_the_account(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    kratos.state.add_identity("alice@example.com", PASSWORD)
    svc = await guarded(**SMALL)
    flow = await browser_flow(http, svc.public_url)
    for _ in range(2):
        await submit(http, svc.public_url, flow, "alice@example.com")
    ok = await submit(http, svc.public_url, flow, "alice@example.com", PASSWORD)
    assert ok.status == 200
    cookies = ok.headers.getall("Set-Cookie")
    assert len(cookies) == 2  # the rotated CSRF cookie and the session cookie, both kept
    assert any(c.startswith("ory_kratos_session=") for c in cookies)
    assert ok.json()["session"]["identity"]["traits"]["email"] == "alice@example.com"
    sent = kratos.state.requests[-1]
    assert orjson.loads(sent.body)["password"] == PASSWORD  # forwarded as sent
    # The account's buckets were reset: three more typos are free again.
    flow = await browser_flow(http, svc.public_url)
    for _ in range(3):
        assert (await submit(http, svc.public_url, flow, "alice@example.com")).status == 400
    assert reached(kratos) == 6
    assert lockout_messages((await submit(http, svc.public_url, flow, "alice@example.com")).json())


async def test_submissions_reach_kratos_byte_identical(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded()
    flow = await api_flow(http, svc.public_url)
    raw = b'{ "password":"p\\u00e4ss" ,"identifier":"x@example.com",  "method":"password"}'
    headers = {"Content-Type": "application/json", "X-Extra": "kept"}
    url = f"{svc.public_url}{LOGIN}?flow={flow.id}"
    async with http.post(url, data=raw, headers=headers) as response:
        assert response.status == 400
    sent = kratos.state.requests[-1]
    assert sent.body == raw
    assert sent.headers["X-Extra"] == "kept"
    assert sent.path_qs == f"{LOGIN}?flow={flow.id}"


async def test_identifier_variants_share_one_bucket(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(
        TRUSTED_PROXIES="127.0.0.1/32",
        BACKOFF_IDENTIFIER_FREE="3",
    )
    flow = await api_flow(http, svc.public_url)
    variants = [
        "Alice@Example.com",
        " alice@example.com",
        FULL_WIDTH,
        "ALICE@example.COM",
    ]
    answers = [
        await submit(http, svc.public_url, flow, v, forwarded_for=f"198.51.100.{i}")
        for i, v in enumerate(variants)
    ]
    assert reached(kratos) == 3
    assert lockout_messages(answers[3].json())


async def test_a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_PAIR_FREE="3")
    flow = await api_flow(http, svc.public_url)
    for i in range(6):
        await submit(http, svc.public_url, flow, "alice@example.com", forwarded_for=f"10.9.{i}.1")
    assert reached(kratos) == 3  # one client (the socket peer), one pair bucket
    assert all(
        r.headers["True-Client-IP"] == "127.0.0.1" for r in kratos.state.requests if r.path == LOGIN
    )


async def test_fifty_simultaneous_wrong_attempts(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded()  # defaults: pair free 5
    flow = await api_flow(http, svc.public_url)
    answers = await asyncio.gather(
        *(submit(http, svc.public_url, flow, "alice@example.com") for _ in range(50))
    )
    assert reached(kratos) == 5
    assert sum(bool(lockout_messages(a.json())) for a in answers) == 45


async def test_only_secret_bearing_password_posts_count(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(
        BACKOFF_PAIR_FREE="1",
        RATE_LIMIT_LOGIN="0",
    )
    flow = await api_flow(http, svc.public_url)
    url = f"{svc.public_url}{LOGIN}?flow={flow.id}"
    bodies = [
        {"method": "identifier_first", "identifier": "alice@example.com"},
        {"method": "password", "identifier": "alice@example.com"},  # no password
        {"method": "totp", "totp_code": "000000"},
        {"method": "password", "password": "x"},  # no identifier
    ]
    for body in bodies * 3:
        async with http.post(
            url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400
            assert (
                not lockout_messages(await r.json())
                if r.content_type == "application/json" and "ui" in await r.json()
                else True
            )
    async with http.post(url, data=b"x", headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 400  # Kratos' own refusal, streamed through
    assert reached(kratos) == len(bodies) * 3 + 1
    # The pair allows one wrong password: nothing above was counted against it.
    assert (await submit(http, svc.public_url, flow, "alice@example.com")).status == 400
    assert reached(kratos) == len(bodies) * 3 + 2


async def test_an_oversized_submission_is_refused_in_the_callers_format(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_MAX_BODY="2048")
    flow = await api_flow(http, svc.public_url)
    huge = {"transient_payload": {"x": "y" * 4096}}
    answer = await submit(http, svc.public_url, flow, "a@example.com", extra=huge)
    assert answer.status == 413
    assert answer.json()["error"]["code"] == 413
    browser = await browser_flow(http, svc.public_url)
    page = await submit(http, svc.public_url, browser, "a@example.com", form=True, extra=huge)
    assert page.status == 413 and page.headers["Content-Type"].startswith("text/html")
    assert reached(kratos) == 0


async def test_browser_is_sent_back_to_the_login_ui_whose_flow_shows_the_lockout(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(**SMALL)
    flow = await browser_flow(http, svc.public_url)
    ui = kratos.state.login_ui_url
    for _ in range(3):
        rejected = await submit(http, svc.public_url, flow, "alice@example.com", form=True)
        assert rejected.status == 303 and rejected.headers["Location"] == f"{ui}?flow={flow.id}"
    shown = await fetch_flow(http, svc.public_url, flow)
    assert not lockout_messages(shown.json())  # not blocked yet: Kratos' flow untouched
    blocked = await submit(http, svc.public_url, flow, "alice@example.com", form=True)
    assert reached(kratos) == 3
    assert blocked.status == 303
    assert blocked.headers["Location"] == f"{ui}?flow={flow.id}"  # learned from Kratos
    assert int(blocked.headers["Retry-After"]) >= 25
    shown = await fetch_flow(http, svc.public_url, flow)
    assert shown.status == 200
    body = shown.json()
    validate("loginFlow", body)
    (message,) = lockout_messages(body)
    assert "seconds before trying again" in message["text"]
    assert [m["id"] for m in body["ui"]["messages"]] == [4000901]  # the old rejection dropped
    # Another caller's flow is not affected.
    other = await browser_flow(http, svc.public_url)
    assert not lockout_messages((await fetch_flow(http, svc.public_url, other)).json())


async def test_a_replica_that_never_saw_a_rejection_still_sends_the_browser_to_the_login_ui(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(**SMALL)
    flow = await browser_flow(http, svc.public_url)
    # The buckets fill up without this replica seeing Kratos send a browser back (another
    # replica did, or JSON callers failed): nothing was learned here.
    for _ in range(3):
        assert (await submit(http, svc.public_url, flow, "alice@example.com")).status == 400
    blocked = await submit(http, svc.public_url, flow, "alice@example.com", form=True)
    assert reached(kratos) == 3
    assert blocked.status == 303  # not a 429 page: Kratos told where its login UI is
    assert blocked.headers["Location"] == f"{kratos.state.login_ui_url}?flow={flow.id}"
    assert int(blocked.headers["Retry-After"]) >= 1


async def test_legacy_redirect(
    guarded: Guarded,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(
        BACKOFF_PAIR_FREE="1",
        BACKOFF_BROWSER_MODE="legacy",
        BACKOFF_LEGACY_REDIRECT_URL="https://app.example/locked?x=1",
    )
    flow = await browser_flow(http, svc.public_url)
    await submit(http, svc.public_url, flow, "alice@example.com", form=True)
    blocked = await submit(http, svc.public_url, flow, "alice@example.com", form=True)
    assert blocked.status == 303
    retry = blocked.headers["Retry-After"]
    assert blocked.headers["Location"] == (
        f"https://app.example/locked?x=1&lockout=true&retry_after={retry}"
    )


async def test_429_when_the_flow_cannot_be_shown_or_when_configured(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    redis_prefix: str,
) -> None:
    svc = await guarded(BACKOFF_PAIR_FREE="1")
    gone = await api_flow(http, svc.public_url)
    await submit(http, svc.public_url, gone, "alice@example.com")
    kratos.state.expire_flow(gone.id)  # Kratos no longer shows it (410)
    blocked = await submit(http, svc.public_url, gone, "alice@example.com")
    assert blocked.status == 429
    error = blocked.json()
    validate("errorGeneric", error)
    assert error["error"]["id"] == "login_backoff"
    assert error["error"]["status"] == "Too Many Requests"
    assert blocked.headers["Retry-After"]

    svc = await guarded(
        REDIS_KEY_PREFIX=redis_prefix + "b:",
        BACKOFF_PAIR_FREE="1",
        BACKOFF_ALWAYS_429="true",
    )
    flow = await api_flow(http, svc.public_url)
    await submit(http, svc.public_url, flow, "alice@example.com")
    blocked = await submit(http, svc.public_url, flow, "alice@example.com")
    assert blocked.status == 429
    validate("loginFlow", blocked.json())
    assert lockout_messages(blocked.json())


async def test_a_native_app_posting_a_form_gets_its_flow_not_a_redirect(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_PAIR_FREE="1")
    flow = await api_flow(http, svc.public_url)
    for _ in range(2):
        answer = await submit(
            http, svc.public_url, flow, "hal@example.com", form=True, accept="*/*"
        )
    assert answer.status == 400
    validate("loginFlow", answer.json())
    assert lockout_messages(answer.json())
    assert reached(kratos) == 1


NESTED = b"[" * 1100 + b"]" * 1100


async def test_json_the_guard_cannot_read_is_refused_never_forwarded_unjudged(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    # Go's decoder takes all of these (deeper nesting, invalid UTF-8, lone surrogates) and
    # would check the password; forwarded unparsed, they would be attempts the guard never saw.
    fields = b'"method":"password","identifier":"alice@example.com","password":"wrong"'
    bodies = [
        b"{" + fields + b',"transient_payload":' + NESTED + b"}",
        b"{" + fields + b',"csrf_token":"\xff"}',
        b"{" + fields + b',"csrf_token":"\\ud800"}',
        b"[" + fields.replace(b":", b",") + b"]",
        b"{",
        b"",
    ]
    svc = await guarded()
    flow = await api_flow(http, svc.public_url)
    url = f"{svc.public_url}{LOGIN}?flow={flow.id}"
    for body in bodies:
        async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400, body[:40]
            error = (await r.json())["error"]
        assert error["code"] == 400 and error["id"] == "bad_request"
    assert reached(kratos) == 0


async def test_a_form_naming_two_accounts_is_refused_never_forwarded(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    # A decoy identifier beside the real one must not let an attacker choose which account
    # the guard counts while Kratos checks the other.
    svc = await guarded()
    flow = await api_flow(http, svc.public_url)
    body = (
        "method=password&identifier=decoy%40example.com&identifier=alice%40example.com&password=x"
    )
    async with http.post(
        f"{svc.public_url}{LOGIN}?flow={flow.id}",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["id"] == "bad_request"
    assert reached(kratos) == 0


async def test_an_oversized_chunked_submission_is_refused_unforwarded(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_MAX_BODY="2048")
    flow = await api_flow(http, svc.public_url)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the bytes are counted
        yield b'{"method":"password","identifier":"a@example.com","password":"x","pad":"'
        for _ in range(8):
            yield b"y" * 512
        yield b'"}'

    url = f"{svc.public_url}{LOGIN}?flow={flow.id}"
    headers = {"Content-Type": "application/json"}
    async with http.post(url, data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert (await response.json())["error"]["id"] == "request_too_large"
    assert reached(kratos) == 0
