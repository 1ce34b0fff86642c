"""The dashboard and the alert rules against a running service and a real Prometheus.

The service runs as its own process (``kratos-hooks serve``: its own metrics registry) in
front of the Kratos stand-in, with real Redis, PostgreSQL and RabbitMQ behind fault-injecting
relays; a Prometheus started here scrapes it every second and loads the plain rule file.
A short load goes through every path the dashboard and the rules watch — logins (success,
failures, a block), a submission-window refusal, decisions (a hit, a miss, a denial), the
hooks (published, rejected, resolver down), a remote authorizer, a logout, API keys
(issued, checked, mistyped, made up, reported leaked, about to expire) — then the
dependencies are cut (Redis, Postgres and RabbitMQ together, then Kratos) and a broken
rules file is deployed. Then every expression of every dashboard panel must return data,
and for every rule its signal (the expression without its threshold) and each series it
selects, so a renamed metric or label value breaks this test, not the dashboard.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import promql_parser
import pytest
import yaml
from aiohttp import web

from handlers.credentials.tokens import issue
from tests.conftest import Kratos
from tests.guard.client import PASSWORD, api_flow, post, submit
from tests.ops.chart import PLAIN_RULES
from tests.support.metrics import metric_total
from tests.support.process import ServiceProcess, free_port
from tests.support.relay import FaultyRelay

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "kratos-hooks.json"
JOB = "kratos-hooks"
HOOK_KEY = "live-test-hook-key-0123456789"
ADMIN = {"X-Kratos-Hooks-Admin-Key": "live-test-admin-key-0123456789"}
LEAK_SECRET = "live-test-leak-secret-0123456789"
# Series of other exporters that the rules use (kube-state-metrics'); not in this test.
EXTERNAL = {"kube_pod_status_ready"}
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus (Debian package) missing"),
]

RULES = """
[[rules]]
id = "app"
paths = ["/app", "/app/**"]
authenticators = ["session_token"]
authorizer = "allow"

[[rules]]
id = "open"
paths = ["/open/**"]
authenticators = ["anonymous"]
authorizer = "allow"

[[rules]]
id = "api"
paths = ["/api/**"]
authenticators = ["token"]
authorizer = "allow"

[[rules]]
id = "registry"
paths = ["/v2/**"]
authenticators = ["anonymous"]
authorizer = { type = "remote", webhook = "corp" }

[webhooks.corp]
url = "AUTHZ_URL"
timeout_ms = 1000
cache_ttl_s = 60
"""


# --- Prometheus -------------------------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    http: aiohttp.ClientSession

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.url}/api/v1/query", params={"query": expr}) as response:
            body = await response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    async def rules(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.url}/api/v1/rules") as response:
            body = await response.json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]


@pytest.fixture
async def prometheus_factory(
    tmp_path: Path,
) -> AsyncIterator[Callable[[int], Awaitable[Prometheus]]]:
    procs: list[asyncio.subprocess.Process] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(target_port: int) -> Prometheus:
        assert PROMETHEUS is not None
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PLAIN_RULES)],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        procs.append(proc)
        http = aiohttp.ClientSession()
        sessions.append(http)
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                async with http.get(f"{url}/-/ready") as response:
                    if response.status == 200:
                        return Prometheus(url, http)
            except aiohttp.ClientError:
                pass
            assert proc.returncode is None, "prometheus exited"
            await asyncio.sleep(0.05)
        raise AssertionError("prometheus did not become ready")

    yield start
    for session in sessions:
        await session.close()
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)


# --- the service, behind relays ---------------------------------------------------------------


@dataclass
class Stack:
    svc: ServiceProcess
    kratos_relay: FaultyRelay
    redis: FaultyRelay
    postgres: FaultyRelay
    amqp: FaultyRelay
    rules_file: Path
    rules: str


@pytest.fixture
async def stack(
    kratos: Kratos,
    relay_to: Callable[[str, int], Awaitable[FaultyRelay]],
    redis_prefix: str,
    database_url: str,
    queue_prefix: str,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    public = kratos.public.make_url("")
    kratos_relay = await relay_to("127.0.0.1", int(public.port or 0))
    redis = await relay_to("127.0.0.1", 6379)
    postgres = await relay_to("127.0.0.1", 5432)
    amqp = await relay_to("127.0.0.1", 5672)
    database = database_url.rpartition("/")[2]
    authz = await _authorizer()
    rules = RULES.replace("AUTHZ_URL", f"http://127.0.0.1:{authz.port}/authorize")
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(rules, encoding="utf-8")
    queue = f"{queue_prefix}notifications"
    svc = ServiceProcess(
        {
            "KRATOS_PUBLIC_URL": kratos_relay.url("http"),
            "KRATOS_ADMIN_URL": kratos.admin_url,
            "REDIS_URL": redis.url("redis", "/0"),
            "REDIS_KEY_PREFIX": redis_prefix,
            "DATABASE_URL": postgres.url("postgresql", f"/{database}", "postgres"),
            "RABBITMQ_URL": amqp.url("amqp", "/", "guest:guest"),
            "HOOKS_QUEUE": queue,
            "HOOKS_API_KEYS": HOOK_KEY,
            "HOOKS_PUBLISH_TIMEOUT": "0.5",
            "HOOKS_AMQP_RECONNECT_INTERVAL": "0.3",
            "HOOKS_RELAY_INTERVAL": "0.3",
            "HOOKS_RELAY_MAX_BACKOFF": "0.5",
            "HOOKS_RESOLVERS": "api",
            "HOOKS_PLATFORM_API_URL": f"http://127.0.0.1:{free_port()}",  # nobody listens
            "HOOKS_HTTP_TIMEOUT": "0.3",
            "HOOKS_HTTP_ATTEMPTS": "1",
            "HOOKS_BREAKER_FAILURES": "2",
            "HOOKS_DB_TIMEOUT": "0.5",
            "BACKOFF_SECRET": "live-test-secret",
            "BACKOFF_PAIR_FREE": "1",
            "RATE_LIMIT_REGISTRATION": "1",
            "DECISIONS_RULES_FILE": str(rules_file),
            "DECISIONS_RELOAD_INTERVAL": "0.2",
            "DB_MIGRATE": "true",
            "TOKENS_ADMIN_KEYS": ADMIN["X-Kratos-Hooks-Admin-Key"],
            "TOKENS_LEAK_SECRETS": LEAK_SECRET,
            "TOKENS_EXPIRY_CHECK_INTERVAL": "0.5",
            "TOKENS_STORE_TIMEOUT": "0.5",
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "SHUTDOWN_TIMEOUT": "2",
            "LOG_LEVEL": "ERROR",
        }
    )
    await svc.start()
    kratos.state.public_base_url = svc.public_url
    try:
        yield Stack(svc, kratos_relay, redis, postgres, amqp, rules_file, rules)
    finally:
        await svc.stop()
        await authz.runner.cleanup()
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
        try:
            channel = await connection.channel()
            await channel.queue_delete(queue)
        finally:
            await connection.close()


@dataclass
class Authorizer:
    runner: web.AppRunner
    port: int


async def _authorizer() -> Authorizer:
    """A registry-style status-code webhook that allows everything."""

    async def authorize(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/authorize", authorize)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Authorizer(runner, port)


# --- the load ---------------------------------------------------------------------------------


def forwarded(uri: str) -> dict[str, str]:
    return {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "app.example.com",
        "X-Forwarded-Uri": uri,
        "Accept": "application/json",
    }


async def login(http: aiohttp.ClientSession, base: str, email: str, password: str) -> Any:
    answer = await submit(http, base, await api_flow(http, base), email, password)
    return answer


async def session_token(http: aiohttp.ClientSession, base: str, email: str) -> str:
    answer = await login(http, base, email, PASSWORD)
    assert answer.status == 200, answer.body
    return str(answer.json()["session_token"])


async def decide(
    http: aiohttp.ClientSession, internal: str, uri: str, token: str = "", api_key: str = ""
) -> int:
    headers = forwarded(uri) | ({"X-Session-Token": token} if token else {})
    headers |= {"X-API-Key": api_key} if api_key else {}
    async with http.get(f"{internal}/decisions", headers=headers) as response:
        await response.read()
        return response.status


async def hook(
    http: aiohttp.ClientSession, internal: str, path: str, body: Any, key: str = HOOK_KEY
) -> int:
    headers = {"X-Kratos-Hooks-Key": key}
    async with http.post(f"{internal}{path}", json=body, headers=headers) as response:
        await response.read()
        return response.status


async def admin_key(http: aiohttp.ClientSession, internal: str, *, expires_in_days: int) -> str:
    body = {
        "organization": "org-live",
        "name": f"live {expires_in_days}d",
        "scopes": ["read:users"],
        "expires_in_days": expires_in_days,
    }
    async with http.post(f"{internal}/admin/tokens/keys", json=body, headers=ADMIN) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["token"])


def made_up_key() -> str:
    """Well-formed (its checksum holds) but never issued."""
    return issue("key", {"key": "key_"}).secret


async def report_leak(http: aiohttp.ClientSession, base: str, token: str) -> str:
    report = [{"token": token, "type": "api_key", "url": "https://example.com/x", "source": "live"}]
    headers = {"Authorization": f"Bearer {LEAK_SECRET}"}
    async with http.post(f"{base}/tokens/leaks", json=report, headers=headers) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["results"][0]["result"])


def welcome(identity_id: str, email: str) -> dict[str, str]:
    """What deploy/kratos/hooks/verification.jsonnet sends."""
    return {"identity_id": identity_id, "email": email, "display_name": "Ada", "first_name": "Ada"}


async def drive(stack: Stack, kratos: Kratos) -> None:
    base, internal = stack.svc.public_url, stack.svc.internal_url
    emails = [f"user{i}@example.com" for i in range(5)]
    ids = [kratos.state.add_identity(email, PASSWORD)["id"] for email in emails]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        # Everything up.
        tokens = [await session_token(http, base, email) for email in emails]
        statuses = [(await login(http, base, emails[0], "wrong")).status for _ in range(3)]
        assert statuses[-1] in {400, 429}  # the third is held (BACKOFF_PAIR_FREE=1)
        flow = await api_flow(http, base, "registration")
        fields = {"method": "password", "traits.email": "new@example.com", "password": "x" * 12}
        refused = [(await post(http, base, "registration", flow, fields)).status for _ in range(2)]
        assert refused[-1] in {400, 429}
        assert await decide(http, internal, "/app/home", tokens[0]) == 200
        assert await decide(http, internal, "/app/home", tokens[0]) == 200  # cached
        assert await decide(http, internal, "/app/home") == 401
        assert await decide(http, internal, "/open/x") == 200
        verification = welcome(ids[0], emails[0])
        assert await hook(http, internal, "/hooks/kratos/verification", verification) == 200
        assert await hook(http, internal, "/hooks/kratos/verification", {}, key="wrong") == 401
        for _ in range(3):  # the platform API is down: its breaker opens
            body = {"identity_id": ids[1]}
            assert await hook(http, internal, "/hooks/kratos/identity?point=login", body) == 200
        assert await decide(http, internal, "/v2/library/alpine/manifests/1") == 200
        assert await decide(http, internal, "/v2/library/alpine/manifests/1") == 200  # cached
        assert await decide(http, internal, "/app/home", tokens[4]) == 200
        async with http.delete(
            f"{base}/self-service/logout/api", json={"session_token": tokens[4]}
        ) as response:
            assert response.status == 204
        assert await decide(http, internal, "/app/home", tokens[4]) == 401

        # Tokens: an API key checked twice (the second from the cache), a mistyped and a
        # made-up one, the key reported leaked (revoked at once), one about to expire.
        key = await admin_key(http, internal, expires_in_days=30)
        assert await decide(http, internal, "/api/x", api_key=key) == 200
        assert await decide(http, internal, "/api/x", api_key=key) == 200
        assert await decide(http, internal, "/api/x", api_key=key[:-1] + "!") == 401
        assert await decide(http, internal, "/api/x", api_key=made_up_key()) == 401
        await admin_key(http, internal, expires_in_days=1)  # its expiry notice is sent
        assert await report_leak(http, base, key) == "revoked"
        # The notice goes out on the next expiry pass (every 0.5 s here); wait for it before
        # the outages below, which would hold it back until the store is reachable again.
        for _ in range(100):
            if await metric_total(http, internal, "kratos_hooks_tokens_expiry_notices_total"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no expiry notice within 10 s")
        assert await decide(http, internal, "/api/x", api_key=key) == 401

        # Redis, PostgreSQL and RabbitMQ down together. A labelled counter is born with its
        # first increment, which rate() cannot see: each outage spans two scrapes.
        for relay in (stack.redis, stack.postgres, stack.amqp):
            relay.cut()
        for round_ in range(2):
            await login(http, base, emails[3], "wrong")  # judged by the in-process limiter
            assert await decide(http, internal, "/app/home", tokens[1 + round_]) == 200
            verification = welcome(ids[2 + round_], emails[2 + round_])
            assert await hook(http, internal, "/hooks/kratos/verification", verification) == 200
            # a token no cache knows: the store is asked, fails, the rule fails closed
            assert await decide(http, internal, "/api/x", api_key=made_up_key()) == 503
            await asyncio.sleep(1.2)
        for relay in (stack.redis, stack.postgres, stack.amqp):
            relay.restore()

        # Kratos down.
        stack.kratos_relay.cut()
        for _ in range(2):
            for _ in range(5):
                async with http.get(f"{base}/self-service/login/api") as response:
                    assert response.status == 502
            assert await decide(http, internal, "/app/home", str(uuid.uuid4())) == 503
            await asyncio.sleep(1.2)
        stack.kratos_relay.restore()

        # A broken rules file deployed: rejected, the old rules stay.
        stack.rules_file.write_text(stack.rules + '\n[[rules]]\nid = "app"\n', encoding="utf-8")
        await asyncio.sleep(0.6)
        assert await decide(http, internal, "/open/x") == 200


# --- what Prometheus must return --------------------------------------------------------------


def dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["templating"]["list"][0]["type"] == "datasource"
    found = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$job", JOB)
                .replace("$instance", ".*")
            )
            found.append((f"{panel['title']} / {target['legendFormat']}", expr))
    return found


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def signal_of(expr: str) -> str:
    """The expression without its thresholds: comparisons against a number give way to the
    compared side, and ``absent(x)`` to ``x``. It returns data whenever the series the alert
    watches exist, firing or not."""

    def strip(node: Any) -> Any:
        if isinstance(node, promql_parser.BinaryExpr) and str(node.op) in COMPARISONS:
            if isinstance(node.rhs, promql_parser.NumberLiteral):
                return node.lhs
            if isinstance(node.lhs, promql_parser.NumberLiteral):
                return node.rhs
        if isinstance(node, promql_parser.Call) and node.func.name in {"absent"}:
            return node.args[0]
        return None

    return str(promql_parser.transform(promql_parser.parse(expr), post_visit=strip))


def selectors(expr: str) -> list[str]:
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            # The series itself, now (an offset asks the past, where this short run has none).
            found.append(re.sub(r"\s+offset\s+\S+$", "", str(node)))

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def test_the_signal_of_a_threshold_rule_keeps_the_watched_series() -> None:
    expr = '(sum(rate(a_total{x="1"}[5m])) / sum(rate(b_total[5m]))) > 0.1 or absent(up{j="k"})'
    assert signal_of(expr) == (
        '(sum(rate(a_total{x="1"}[5m])) / sum(rate(b_total{}[5m]))) or  up{j="k"}'
    )
    assert selectors(expr) == ['a_total{x="1"}', "b_total{}", 'up{j="k"}']
    assert selectors("x unless x offset 15m") == ["x{}", "x{}"]


async def test_every_dashboard_panel_and_rule_returns_data_from_a_running_service(
    stack: Stack,
    kratos: Kratos,
    prometheus_factory: Callable[[int], Awaitable[Prometheus]],
) -> None:
    prometheus = await prometheus_factory(stack.svc.internal_port)
    # Prometheus hands its first targets to the scrapers about 5 s after start: the load
    # begins once the service has been scraped, so every counter is seen before it moves.
    for _ in range(150):
        if await prometheus.query(f'up{{job="{JOB}"}} == 1'):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the service was never scraped")
    await drive(stack, kratos)
    await asyncio.sleep(3)  # the last counters scraped at least twice

    missing = []
    for title, expr in dashboard_expressions():
        if not await prometheus.query(expr):
            missing.append(f"panel {title}: {expr}")
        for selector in selectors(expr):
            if not await prometheus.query(selector):
                missing.append(f"panel {title}: no series {selector}")
    for alert, expr in rule_expressions().items():
        if any(s.split("{")[0] in EXTERNAL for s in selectors(expr)):
            assert all(s.split("{")[0] in EXTERNAL for s in selectors(expr)), alert
            continue
        if not await prometheus.query(signal_of(expr)):
            missing.append(f"rule {alert}: {signal_of(expr)}")
        for selector in selectors(expr):
            if not await prometheus.query(selector):
                missing.append(f"rule {alert}: no series {selector}")
    assert missing == []

    # Prometheus loaded every rule of the file and evaluates each without an error.
    loaded = await prometheus.rules()
    assert {r["name"] for r in loaded} == set(rule_expressions())
    assert [(r["name"], r["lastError"]) for r in loaded if r["health"] != "ok"] == []
    # The outages of the load are what the rules watch: these are pending or firing now.
    active = {r["name"] for r in loaded if r["state"] in {"pending", "firing"}}
    assert {
        "KratosHooksKratosUnreachable",
        "KratosHooksRedisErrors",
        "KratosHooksOutboxErrors",
        "KratosHooksResolverUnavailable",
        "KratosHooksBrokerUnavailable",
        "KratosHooksRulesRejected",
        "KratosHooksEventsUnconfirmed",
        "KratosHooksTokenStoreUnavailable",
        "KratosHooksTokenLeaked",
    } <= active
    assert "KratosHooksDown" not in active


def test_the_dashboard_is_built_from_its_panel_list() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_dashboard", DASHBOARD.with_name("build_dashboard.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text(encoding="utf-8") == module.render(), (
        "deploy/grafana/kratos-hooks.json is stale: python deploy/grafana/build_dashboard.py"
    )
    ids = [p["id"] for p in orjson.loads(DASHBOARD.read_bytes())["panels"]]
    assert len(ids) == len(set(ids))
