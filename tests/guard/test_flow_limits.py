"""Per-IP windows on registration / recovery / verification answered like a login lockout:
a browser is sent back to its flow's UI, and that flow, fetched through the proxy, says how
long to wait — for exactly that long."""

from __future__ import annotations

import aiohttp

from tests.conftest import Kratos, Service
from tests.guard.client import (
    api_flow,
    browser_flow,
    fetch_flow,
    guards,
    lockout_messages,
    post,
)
from tests.guard.conftest import Guarded
from tests.guard.simulation import Clock
from tests.kratos_standin import validate

EMAIL = {"method": "code", "email": "someone@example.com"}
REGISTRATION = {"method": "password", "traits.email": "new@example.com", "password": "x" * 12}
RATE_TEXT = "Too many requests from your network. Please wait 60 seconds before trying again."


def with_clock(svc: Service, clock: Clock) -> None:
    for guard in guards(svc):
        guard.clock = clock


async def test_browser_over_the_registration_limit_goes_to_the_configured_ui(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    ui = "https://app.example/auth/registration"
    svc = await guarded(
        RATE_LIMIT_REGISTRATION="2",
        BACKOFF_REGISTRATION_UI_URL=ui,
    )
    clock = Clock()
    with_clock(svc, clock)
    base = svc.public_url
    flow = await browser_flow(http, base, "registration")
    for _ in range(2):
        await post(http, base, "registration", flow, REGISTRATION, form=True)
    blocked = await post(http, base, "registration", flow, REGISTRATION, form=True)
    assert kratos.state.count("POST", "/self-service/registration") == 2
    assert blocked.status == 303
    assert blocked.headers["Location"] == f"{ui}?flow={flow.id}"
    assert blocked.headers["Retry-After"] == "60"

    shown = await fetch_flow(http, base, flow, "registration")
    assert shown.status == 200
    body = shown.json()
    validate("registrationFlow", body)
    assert body["id"] == flow.id
    (message,) = lockout_messages(body)
    assert message["text"] == RATE_TEXT
    assert message["type"] == "error"
    assert message["context"]["retry_after_seconds"] == 60
    # Another flow is untouched, and so is this one once the wait is over.
    other = await browser_flow(http, base, "registration")
    assert not (await fetch_flow(http, base, other, "registration")).json()["ui"].get("messages")
    clock.now += 61
    assert not lockout_messages((await fetch_flow(http, base, flow, "registration")).json())


async def test_recovery_ui_is_learned_from_kratos_redirects(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(RATE_LIMIT_RECOVERY="2")
    with_clock(svc, Clock())
    base = svc.public_url
    flow = await browser_flow(http, base, "recovery")
    ui = f"{kratos.state.recovery_ui_url}?flow={flow.id}"
    sent = [await post(http, base, "recovery", flow, EMAIL, form=True) for _ in range(2)]
    assert [(a.status, a.headers["Location"]) for a in sent] == [(303, ui)] * 2  # Kratos' own
    blocked = await post(http, base, "recovery", flow, EMAIL, form=True)
    assert kratos.state.count("POST", "/self-service/recovery") == 2
    assert (blocked.status, blocked.headers["Location"]) == (303, ui)
    assert "Retry-After" in blocked.headers

    body = (await fetch_flow(http, base, flow, "recovery")).json()
    validate("recoveryFlow", body)
    assert body["state"] == "sent_email"  # Kratos' flow, with the message added
    assert [m["id"] for m in body["ui"]["messages"]] == [1060003, 4000901]
    assert lockout_messages(body)[0]["text"] == RATE_TEXT


async def test_verification_json_caller_gets_its_flow_with_the_message(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(RATE_LIMIT_VERIFICATION="1")
    with_clock(svc, Clock())
    flow = await api_flow(http, svc.public_url, "verification")
    sent = await post(http, svc.public_url, "verification", flow, EMAIL)
    assert sent.status == 200
    blocked = await post(http, svc.public_url, "verification", flow, EMAIL)
    assert kratos.state.count("POST", "/self-service/verification") == 1
    assert blocked.status == 400
    body = blocked.json()
    validate("verificationFlow", body)
    assert body["id"] == flow.id
    assert [m["id"] for m in body["ui"]["messages"]] == [1080003, 4000901]
    assert lockout_messages(body)[0]["text"] == RATE_TEXT
    # Fetched again within the wait, the flow still says so.
    shown = (await fetch_flow(http, svc.public_url, flow, "verification")).json()
    validate("verificationFlow", shown)
    assert lockout_messages(shown)[0]["text"] == RATE_TEXT


async def test_browser_gets_the_429_page_while_the_flows_ui_is_unknown(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(RATE_LIMIT_VERIFICATION="1")
    base = svc.public_url
    flow = await browser_flow(http, base, "verification")
    # A CSRF failure goes to Kratos' error UI: not the flow's UI, nothing is learned from it.
    forged = await post(http, base, "verification", flow, {**EMAIL, "csrf_token": "x"}, form=True)
    assert forged.status == 303
    assert forged.headers["Location"].startswith(kratos.state.error_ui_url)
    blocked = await post(http, base, "verification", flow, EMAIL, form=True)
    assert kratos.state.count("POST", "/self-service/verification") == 1
    assert blocked.status == 429
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert "Too many requests from your network" in blocked.body.decode()
    assert int(blocked.headers["Retry-After"]) >= 1
