"""What the guard leaves alone, what it tells logs and metrics, and the path prefix."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.conftest import Kratos
from tests.guard.client import PASSWORD, api_flow, browser_flow, lockout_messages, submit
from tests.guard.conftest import Guarded

LOGIN = "/self-service/login"


async def test_multipart_posts_are_guarded_and_forwarded_intact(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(BACKOFF_PAIR_FREE="2")
    flow = await browser_flow(http, svc.public_url)
    url = f"{svc.public_url}{LOGIN}?flow={flow.id}"
    locations, bodies = [], []
    boundary = "kh-guard-boundary"
    fields = [
        ("csrf_token", flow.csrf or ""),
        ("method", "password"),
        ("identifier", "Erin@Example.com"),
        ("password", "wrong"),
    ]
    raw = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'.encode()
            for n, v in fields
        )
        + f"--{boundary}--\r\n".encode()
    )
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Cookie": flow.cookie or "",
        "Accept": "text/html",
    }
    for _ in range(3):
        async with http.post(url, data=raw, headers=headers, allow_redirects=False) as r:
            assert r.status == 303
            locations.append(r.headers["Location"])
            bodies.append(r.headers.get("Retry-After"))
    assert kratos.state.count("POST", LOGIN) == 2
    assert bodies[:2] == [None, None] and bodies[2] is not None
    assert all(loc.endswith(f"?flow={flow.id}") for loc in locations)
    sent = next(r for r in kratos.state.requests if r.path == LOGIN)
    assert sent.body == raw


async def test_other_requests_on_login_paths_pass_through(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded()
    async with http.get(f"{svc.public_url}{LOGIN}", allow_redirects=False) as response:
        # Kratos' own answer: GET is routed to the submit handler, which sends a browser
        # without a flow to the error UI.
        assert response.status == 303
        assert response.headers["Location"].startswith(kratos.state.error_ui_url)
    async with http.head(f"{svc.public_url}{LOGIN}/flows?id=x") as response:
        assert response.status in (404, 405)
    assert kratos.state.count("GET", LOGIN) == 1
    flow = await api_flow(http, svc.public_url)
    async with http.get(f"{svc.public_url}{LOGIN}/flows?id={flow.id}") as response:
        body = await response.read()
    direct = kratos.public_url + f"{LOGIN}/flows?id={flow.id}"
    async with http.get(direct) as response:
        assert await response.read() == body  # untouched when no lockout is remembered


async def test_the_guard_honours_the_path_prefix(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(
        PUBLIC_PATH_PREFIX="/ory/kratos/public",
        BACKOFF_PAIR_FREE="1",
    )
    base = svc.public_url + "/ory/kratos/public"
    flow = await api_flow(http, base)
    await submit(http, base, flow, "alice@example.com")
    blocked = await submit(http, base, flow, "alice@example.com")
    assert lockout_messages(blocked.json())
    assert kratos.state.count("POST", LOGIN) == 1


async def test_logs_and_metrics_name_no_secret(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kratos.state.add_identity("frank@example.com", PASSWORD)
    svc = await guarded(BACKOFF_PAIR_FREE="1")
    flow = await browser_flow(http, svc.public_url)
    caplog.set_level(logging.INFO, logger="kratos_hooks.guard")
    await submit(http, svc.public_url, flow, "frank@example.com")
    await submit(http, svc.public_url, flow, "frank@example.com")
    await submit(http, svc.public_url, flow, "Frank@example.com", PASSWORD, extra={})
    guard_lines = [r for r in caplog.records if r.name == "kratos_hooks.guard"]
    blocks = [r for r in guard_lines if r.getMessage() == "login attempt blocked"]
    assert len(blocks) == 2 and blocks[0].__dict__["bucket"] == "pair"
    for record in guard_lines:
        text = repr(record.__dict__).lower()
        assert "frank" not in text and "wrong" not in text and PASSWORD not in text
        assert (flow.cookie or "x").split("=", 1)[1] not in text
    async with http.get(f"{svc.internal_url}/metrics") as response:
        metrics = (await response.read()).decode()
    assert 'kratos_hooks_backoff_blocks_total{bucket="pair"}' in metrics
    assert 'kratos_hooks_backoff_attempts_total{outcome="failure"}' in metrics
