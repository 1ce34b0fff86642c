"""The token page in a real browser: headless Debian Chromium driven by Playwright, through
the proxy, signed in with the Kratos stand-in's real browser login flow (a tiny login UI
renders the flow's form, as a Kratos UI does). Sign in, create a token, read it once, use it
against a decision, revoke it, see the decision turn to 401; a form posted without its CSRF
token is refused. The screenshot in docs/ is taken here."""

from __future__ import annotations

import html
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Kratos, ServiceFactory
from tests.credentials.conftest import TOKEN_RULES, bearer, forwarded

playwright = pytest.importorskip("playwright.async_api")
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = os.environ.get("KH_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The README's picture: rewritten only when asked (KH_WRITE_SCREENSHOT=1), so a test run
# never leaves the checkout changed.
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "token-page.png"
EMAIL, PASSWORD = "ada@example.com", "correct horse battery staple"


def login_ui(proxy_url: str) -> web.Application:
    """A login page as a Kratos UI renders it: the flow fetched with the browser's cookies,
    its form posted to the flow's action (the proxy)."""

    async def page(request: web.Request) -> web.Response:
        flow_id = request.query["flow"]
        headers = {"Cookie": request.headers.get("Cookie", ""), "Accept": "application/json"}
        async with (
            aiohttp.ClientSession() as client,
            client.get(
                f"{proxy_url}/self-service/login/flows?id={flow_id}", headers=headers
            ) as answer,
        ):
            flow = await answer.json()
        csrf = next(
            n["attributes"]["value"]
            for n in flow["ui"]["nodes"]
            if n["attributes"].get("name") == "csrf_token"
        )
        body = f"""<!doctype html><html lang="en"><title>Sign in</title>
<form method="post" action="{html.escape(flow["ui"]["action"])}">
<input type="hidden" name="csrf_token" value="{html.escape(csrf)}">
<input type="hidden" name="method" value="password">
<label for="identifier">Email</label><input id="identifier" name="identifier">
<label for="password">Password</label><input id="password" name="password" type="password">
<button type="submit">Sign in</button></form></html>"""
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/login", page)
    return app


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make tools` installs Debian's chromium")
    async with playwright.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def test_create_use_and_revoke_a_token_in_a_browser(
    kratos: Kratos,
    start_service: ServiceFactory,
    browser: object,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(TOKEN_RULES)
    service = await start_service(
        KRATOS_PUBLIC_URL=kratos.public_url,
        KRATOS_ADMIN_URL=kratos.admin_url,
        TRUSTED_PROXIES="127.0.0.1/32",
        DECISIONS_RULES_FILE=str(rules),
        TOKENS_SQLITE_FILE=str(tmp_path / "tokens.sqlite3"),
    )
    kratos.state.public_base_url = service.public_url
    ui = TestServer(login_ui(service.public_url), host="127.0.0.1")
    await ui.start_server()
    kratos.state.login_ui_url = str(ui.make_url("/login"))
    kratos.state.add_identity(EMAIL, PASSWORD, traits={"name": {"first": "Ada"}})
    decisions = service.internal_url + "/decisions"

    async def decision(secret: str) -> int:
        headers = forwarded("/api/users/1") | bearer(secret)
        async with http.get(decisions, headers=headers) as response:
            return response.status

    context = await browser.new_context(viewport={"width": 900, "height": 1400})  # type: ignore[attr-defined]
    page = await context.new_page()
    try:
        # Sign in: the page asks, Kratos' browser flow signs in, return_to brings us back.
        await page.goto(service.public_url + "/tokens/")
        assert await page.locator("h1").inner_text() == "Sign in to manage your tokens"
        await page.get_by_role("link", name="Sign in").click()
        await page.get_by_label("Email").fill(EMAIL)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(service.public_url + "/tokens/")
        assert await page.locator("h1").inner_text() == "Personal access tokens"
        assert EMAIL in await page.locator(".who").inner_text()

        # Create: name, scopes, expiry — and the secret, shown once with a copy button.
        await page.get_by_label("Name").fill("CLI on my laptop")
        await page.get_by_label("read:users — Read user data").check()
        await page.get_by_label("read:resources — Read app resources").check()
        await page.get_by_label("In 90 days").check()
        await page.get_by_role("button", name="+ Create token").click()
        secret = await page.locator("#secret-value").input_value()
        assert secret.startswith("pat_") and len(secret) == 40
        assert await page.get_by_role("alert").inner_text() == (
            "Copy it now. This is the only time it is shown: it is not stored, and it cannot "
            "be shown again."
        )
        copy = page.get_by_role("button", name="Copy")
        assert await copy.is_visible()  # the script revealed it
        await copy.click()
        await page.wait_for_selector("text=Copied to the clipboard.")

        # Use it against a decision.
        assert await decision(secret) == 200
        await page.goto(service.public_url + "/tokens/")
        listing = await page.locator(".tokens").first.inner_text()
        assert "CLI on my laptop" in listing and secret not in await page.content()
        assert "Last used: just now" in listing and "(90 days)" in listing

        # A second token for the screenshot, then the page as a user sees it.
        await page.get_by_label("Name").fill("CI pipeline")
        await page.get_by_label("read:resources — Read app resources").check()
        await page.get_by_label("In 30 days").check()
        await page.get_by_role("button", name="+ Create token").click()
        await page.locator("#secret-value").evaluate("e => e.value = 'pat_••••••••••••••••••••'")
        shot = SCREENSHOT if os.environ.get("KH_WRITE_SCREENSHOT") == "1" else tmp_path / "p.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        # Revoke the first, with confirmation; the decision turns to 401.
        await page.goto(service.public_url + "/tokens/")
        await page.get_by_role("link", name="Revoke CLI on my laptop").click()
        assert await page.locator("h1").inner_text() == "Revoke “CLI on my laptop”?"
        await page.get_by_role("button", name="Revoke token").click()
        await page.wait_for_url(service.public_url + "/tokens/?done=revoked")
        assert await page.get_by_role("status").first.inner_text() == "Token revoked."
        revoked = await page.locator(".tokens.revoked").inner_text()
        assert "CLI on my laptop" in revoked and "Manual revocation" in revoked
        assert await decision(secret) == 401

        # A form without its CSRF token is refused, and nothing is created.
        await page.get_by_label("Name").fill("sneaky")
        await page.get_by_label("read:users — Read user data").check()
        await page.locator("input[name=csrf_token]").first.evaluate("e => e.remove()")
        await page.get_by_role("button", name="+ Create token").click()
        assert await page.locator("h1").inner_text() == "This form has expired"
        await page.goto(service.public_url + "/tokens/")
        assert "sneaky" not in await page.content()
    finally:
        await context.close()
        await ui.close()
