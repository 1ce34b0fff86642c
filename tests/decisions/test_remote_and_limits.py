"""The remote status-code authorizer and per-rule rate limits, through the listener."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from tests.decisions.conftest import API, Decisions, DecisionsFactory, forwarded
from tests.support.metrics import metric_total
from tests.support.relay import FaultyRelay

REDIS_ERRORS = "kratos_hooks_decisions_redis_errors_total"

RULES = """
[webhooks.corp]
url = "{url}/authorize"
timeout_ms = 300
bearer_token = "hook-secret"
forward_headers = ["X-Custom-Header"]
cache_ttl_s = 60

[webhooks.basic]
url = "{url}/authorize"
basic_auth = {{ username = "registry", password = "p@ss:word" }}

[webhooks.gone]
url = "http://127.0.0.1:9/authorize"
timeout_ms = 300

[[rules]]
id = "registry"
paths = ["/v2/**"]
authenticators = ["session_token", "anonymous"]
authorizer = {{ type = "remote", webhook = "corp" }}

[[rules]]
id = "basic"
paths = ["/basic/**"]
authenticators = ["anonymous"]
authorizer = {{ type = "remote", webhook = "basic" }}

[[rules]]
id = "unreachable"
paths = ["/gone/**"]
authenticators = ["anonymous"]
authorizer = {{ type = "remote", webhook = "gone" }}

[[rules]]
id = "per-ip"
paths = ["/limited/**"]
authenticators = ["anonymous"]
authorizer = "allow"
rate_limit = {{ per_ip = 3, window_s = 60 }}

[[rules]]
id = "per-user"
paths = ["/per-user/**"]
authenticators = ["session_token"]
authorizer = "allow"
rate_limit = {{ per_subject = 2, window_s = 60 }}
"""


@dataclass
class Webhook:
    server: TestServer
    status: int = 200
    delay: float = 0.0
    seen: list[CIMultiDict[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    app = web.Application()
    hook: Webhook

    async def authorize(request: web.Request) -> web.Response:
        hook.seen.append(CIMultiDict(request.headers))
        await asyncio.sleep(hook.delay)
        return web.Response(status=hook.status)

    app.router.add_get("/authorize", authorize)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    hook = Webhook(server)
    yield hook
    await server.close()


@pytest.fixture
async def remote(
    webhook: Webhook,
    rules_file: Path,
    start_decisions: DecisionsFactory,
    redis_url: str,
    redis_prefix: str,
) -> Decisions:
    rules_file.write_text(RULES.format(url=webhook.url))
    return await start_decisions(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)


async def ask(http: aiohttp.ClientSession, d: Decisions, uri: str, **headers: str) -> int:
    async with http.get(d.url, headers={**forwarded(uri), **API, **headers}) as response:
        await response.read()
        return response.status


REGISTRY = {"X-Registry-Action": "get-manifest", "X-Registry-Namespace": "team/app"}


async def test_webhook_allows_and_sees_the_context(
    remote: Decisions, webhook: Webhook, http: aiohttp.ClientSession
) -> None:
    identity, token, _ = remote.user()
    headers = {**REGISTRY, "X-Session-Token": token, "X-Custom-Header": "blue"}
    assert await ask(http, remote, "/v2/team/app/manifests/1", **headers) == 200
    seen = webhook.seen[0]
    assert seen["X-Forwarded-Method"] == "GET"
    assert seen["X-Forwarded-Uri"] == "/v2/team/app/manifests/1"
    assert seen["X-Forwarded-Host"] == "app.example.com"
    assert seen["X-Registry-Action"] == "get-manifest"
    assert seen["X-User-ID"] == identity["id"]
    assert seen["Authorization"] == "Bearer hook-secret"
    assert seen["X-Custom-Header"] == "blue"
    assert "X-Session-Token" not in seen  # the caller's credential is not passed on


async def test_webhook_basic_auth_and_anonymous_context(
    remote: Decisions, webhook: Webhook, http: aiohttp.ClientSession
) -> None:
    assert await ask(http, remote, "/basic/x", **{"X-User-ID": "spoofed"}) == 200
    seen = webhook.seen[0]
    assert seen["Authorization"] == "Basic " + base64.b64encode(b"registry:p@ss:word").decode()
    assert "X-User-ID" not in seen  # anonymous: no identity, and never the caller's claim


async def test_webhook_answers_are_cached_per_identity_and_route(
    remote: Decisions, webhook: Webhook, http: aiohttp.ClientSession
) -> None:
    _, token, _ = remote.user()
    _, other, _ = remote.user()
    for _ in range(3):
        assert await ask(http, remote, "/v2/a", **{"X-Session-Token": token}) == 200
    assert len(webhook.seen) == 1
    webhook.status = 403
    assert await ask(http, remote, "/v2/a", **{"X-Session-Token": token}) == 200  # cached
    assert await ask(http, remote, "/v2/a", **{"X-Session-Token": other}) == 403
    assert await ask(http, remote, "/v2/b", **{"X-Session-Token": token}) == 403
    assert await ask(http, remote, "/v2/b", **{"X-Session-Token": token}) == 403
    assert len(webhook.seen) == 3
    async with http.get(remote.service.internal_url + "/metrics") as response:
        text = await response.text()
    assert 'kratos_hooks_decisions_remote_total{result="cached_deny",webhook="corp"}' in text


async def test_webhook_failures_deny(
    remote: Decisions, webhook: Webhook, http: aiohttp.ClientSession
) -> None:
    webhook.delay = 1.0  # beyond timeout_ms
    assert await ask(http, remote, "/v2/slow") == 403
    assert await ask(http, remote, "/gone/x") == 403  # connection refused


async def test_rate_limit_per_ip(remote: Decisions, http: aiohttp.ClientSession) -> None:
    for _ in range(3):
        assert await ask(http, remote, "/limited/x") == 200
    async with http.get(remote.url, headers={**forwarded("/limited/x"), **API}) as response:
        assert response.status == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60


async def test_rate_limit_per_subject(remote: Decisions, http: aiohttp.ClientSession) -> None:
    _, token, _ = remote.user()
    _, other, _ = remote.user()
    assert await ask(http, remote, "/per-user/x", **{"X-Session-Token": token}) == 200
    assert await ask(http, remote, "/per-user/x", **{"X-Session-Token": token}) == 200
    assert await ask(http, remote, "/per-user/x", **{"X-Session-Token": token}) == 429
    assert await ask(http, remote, "/per-user/x", **{"X-Session-Token": other}) == 200


# --- mTLS client certificate and a private CA ----------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A private CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed: the mTLS tests need it to make certificates")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=kh-test-ca", cwd=tmp_path)  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (tmp_path / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=kh-{name}", cwd=tmp_path)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
                 "-extfile", f"{name}.ext", cwd=tmp_path)  # fmt: skip
    return tmp_path


async def test_webhook_over_mtls_with_a_private_ca(
    pki: Path,
    rules_file: Path,
    start_decisions: DecisionsFactory,
    http: aiohttp.ClientSession,
) -> None:
    seen: list[str] = []

    async def authorize(request: web.Request) -> web.Response:
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in cert["subject"]) if cert else {}
        seen.append(subject.get("commonName", ""))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/authorize", authorize)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    server_ssl.load_cert_chain(pki / "server.pem", pki / "server.key")
    server_ssl.verify_mode = ssl.CERT_REQUIRED
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=server_ssl)
    try:
        url = f"https://127.0.0.1:{server.port}/authorize"
        rules_file.write_text(
            f'[webhooks.secure]\nurl = "{url}"\nserver_ca_bundle = "{pki / "ca.pem"}"\n'
            f'client_certificate = "{pki / "client.pem"}"\n'
            f'client_private_key = "{pki / "client.key"}"\n'
            "[webhooks.no_client_cert]\n"
            f'url = "{url}"\nserver_ca_bundle = "{pki / "ca.pem"}"\n'
            "[webhooks.untrusted_server]\n"
            f'url = "{url}"\n'
            '[[rules]]\nid = "mtls"\npaths = ["/mtls"]\nauthenticators = ["anonymous"]\n'
            'authorizer = { type = "remote", webhook = "secure" }\n'
            '[[rules]]\nid = "plain"\npaths = ["/plain"]\nauthenticators = ["anonymous"]\n'
            'authorizer = { type = "remote", webhook = "no_client_cert" }\n'
            '[[rules]]\nid = "public-ca"\npaths = ["/public-ca"]\nauthenticators = ["anonymous"]\n'
            'authorizer = { type = "remote", webhook = "untrusted_server" }\n'
        )
        d = await start_decisions()
        assert await ask(http, d, "/mtls") == 200
        assert seen == ["kh-client"]
        assert await ask(http, d, "/plain") == 403  # the server demands a client certificate
        assert await ask(http, d, "/public-ca") == 403  # the private CA is not trusted by default
    finally:
        await server.close()


async def test_rate_limit_counts_locally_while_redis_is_down(
    webhook: Webhook,
    rules_file: Path,
    start_decisions: DecisionsFactory,
    relay_to: Callable[[str, int], Awaitable[FaultyRelay]],
    redis_prefix: str,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules_file.write_text(RULES.format(url=webhook.url))
    redis = await relay_to("127.0.0.1", 6379)
    d = await start_decisions(REDIS_URL=redis.url("redis", "/0"), REDIS_KEY_PREFIX=redis_prefix)
    redis.cut()
    before = await metric_total(http, d.service.internal_url, REDIS_ERRORS)
    caplog.set_level(logging.WARNING, logger="kratos_hooks.decisions")
    # Neither fail-closed (everyone refused) nor unlimited: this replica counts on its own.
    assert [await ask(http, d, "/limited/x") for _ in range(4)] == [200, 200, 200, 429]
    assert await metric_total(http, d.service.internal_url, REDIS_ERRORS) >= before + 4
    assert "rate limit counted locally" in [
        r.getMessage() for r in caplog.records if r.name == "kratos_hooks.decisions"
    ]
