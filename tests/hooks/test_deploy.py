"""The shipped Kratos configuration works with the shipped code: every web_hook of
``deploy/kratos/kratos.hooks.yml`` is rendered with the ``jsonnet`` package against a realistic
``ctx`` (as Kratos passes it: a top-level argument) and posted the way Kratos would."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import _jsonnet
import aiohttp
import orjson
import pytest
import yaml

from tests.conftest import Kratos
from tests.hooks.conftest import Consumer, HooksFactory, UserTable
from tests.kratos_standin.bodies import public_identity

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kratos"
HOOKS_HOST = "http://kratos-hooks:8081"
NIL = "00000000-0000-0000-0000-000000000000"  # ctx.identity.id at registration pre-persist


def web_hooks() -> dict[str, dict[str, Any]]:
    """Every web_hook config of the excerpt, by ``flow.method`` (``flow`` when flow-level)."""
    flows = yaml.safe_load((DEPLOY / "kratos.hooks.yml").read_text())["selfservice"]["flows"]
    found: dict[str, dict[str, Any]] = {}
    for flow, spec in flows.items():
        after = spec["after"]
        lists = {flow: after["hooks"]} if "hooks" in after else {}
        lists |= {f"{flow}.{m}": v["hooks"] for m, v in after.items() if isinstance(v, dict)}
        for where, hooks in lists.items():
            for n, item in enumerate(h for h in hooks if h["hook"] == "web_hook"):
                found[f"{where}#{n}"] = item["config"]
    return found


def ctx_for(identity: dict[str, Any], flow_type: str) -> dict[str, Any]:
    """A ctx as Kratos builds it for an ``after`` hook (identity without admin fields)."""
    ctx: dict[str, Any] = {
        "flow": {
            "id": str(uuid.uuid4()),
            "type": "browser",
            "request_url": f"https://alkem.io/self-service/{flow_type}/browser",
            "ui": {"action": "https://alkem.io/self-service", "method": "POST", "nodes": []},
            "transient_payload": {},
        },
        "identity": public_identity(identity),
        "request_headers": {
            "Accept": ["application/json"],
            "User-Agent": ["Mozilla/5.0"],
            "True-Client-Ip": ["203.0.113.7"],
        },
        "request_method": "POST",
        "request_url": f"https://alkem.io/self-service/{flow_type}?flow=abc",
        "request_cookies": {},
    }
    if flow_type == "login":
        ctx["session"] = {"id": str(uuid.uuid4()), "active": True, "identity": ctx["identity"]}
    return ctx


def render(config: dict[str, Any], ctx: dict[str, Any]) -> bytes:
    template = DEPLOY / "hooks" / config["body"].rsplit("/", 1)[-1]
    rendered = _jsonnet.evaluate_file(str(template), tla_codes={"ctx": orjson.dumps(ctx).decode()})
    return orjson.dumps(orjson.loads(rendered))


async def call(
    http: aiohttp.ClientSession, base: str, config: dict[str, Any], ctx: dict[str, Any]
) -> tuple[int, Any]:
    auth = config["auth"]["config"]
    assert config["auth"]["type"] == "api_key" and auth["in"] == "header"
    url = config["url"].replace(HOOKS_HOST, base)
    headers = {auth["name"]: auth["value"], "Content-Type": "application/json"}
    async with http.request(config["method"], url, data=render(config, ctx), headers=headers) as r:
        raw = await r.read()
        return r.status, orjson.loads(raw) if raw else None


def test_the_excerpt_wires_every_hook_point() -> None:
    hooks = web_hooks()
    assert set(hooks) == {
        "verification#0",
        "verification#1",
        "login.password#0",
        "login.oidc#0",
        "registration.password#0",
        "registration.oidc#0",
    }
    assert all(h["url"].startswith(HOOKS_HOST + "/hooks/kratos/") for h in hooks.values())
    assert hooks["registration.password#0"]["response"]["parse"] is True


@pytest.fixture
def api_key() -> str:
    return str(web_hooks()["verification#0"]["auth"]["config"]["value"])


async def test_shipped_configuration_drives_every_hook(
    hooks_service: HooksFactory,
    kratos: Kratos,
    consumer: Consumer,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    api_key: str,
) -> None:
    svc = await hooks_service(
        HOOKS_API_KEYS=api_key,
        HOOKS_PLATFORM_DATABASE_URL=user_table.platform_dsn,  # the default queries, as shipped
        HOOKS_RESOLVE_TRAIT="email",
        HOOKS_RESOLVERS="postgres",
    )
    hooks = web_hooks()
    identity = kratos.state.add_identity(
        "ada@example.org", "pw", traits={"name": {"first": "Ada", "last": "Lovelace"}}
    )
    # A platform user no identity is bound to yet (e.g. invited by email).
    user_id, agent_id = await user_table.add(None, "ada@example.org")
    wanted = {"alkemio_actor_id": user_id, "alkemio_agent_id": agent_id}

    # Registration, before the identity is stored: Kratos sends the nil id, the shipped body
    # carries the traits, and the answer carries the metadata found by the email.
    registration = hooks["registration.password#0"]
    ctx = ctx_for(identity, "registration")
    ctx["identity"]["id"] = NIL
    assert orjson.loads(render(registration, ctx))["identity"]["traits"]["email"] == (
        "ada@example.org"
    )
    status, body = await call(http, svc.internal_url, registration, ctx)
    assert (status, body) == (200, {"identity": {"metadata_public": wanted}})
    await user_table.bind("ada@example.org", identity["id"])  # the platform, once it exists

    # Verification: the welcome event, and the metadata written through the Admin API.
    ctx = ctx_for(identity, "verification")
    assert await call(http, svc.internal_url, hooks["verification#0"], ctx) == (
        200,
        {"status": "published"},
    )
    [event] = await consumer.drain(want=1)
    assert event["data"]["user"]["profile"]["displayName"] == "Ada Lovelace"
    assert event["data"]["user"]["firstName"] == "Ada"
    assert await call(http, svc.internal_url, hooks["verification#1"], ctx) == (
        200,
        {"status": "patched"},
    )
    assert kratos.state.identities[identity["id"]]["metadata_public"] == wanted

    # Every later login (password or OIDC): nothing to write.
    stored = kratos.state.identities[identity["id"]]
    for where in ("login.password#0", "login.oidc#0"):
        assert await call(http, svc.internal_url, hooks[where], ctx_for(stored, "login")) == (
            200,
            {"status": "unchanged"},
        )
    assert sum(r.method == "PATCH" for r in kratos.state.requests) == 1
    assert kratos.state.count("GET", f"/admin/identities/{identity['id']}") == 0


def test_verification_template_never_fails_on_missing_traits() -> None:
    config = web_hooks()["verification#0"]
    ctx = {"identity": {"id": "3f1c1f0e-0000-4000-8000-000000000000", "traits": {"name": "x"}}}
    assert orjson.loads(render(config, ctx)) == {
        "identity_id": "3f1c1f0e-0000-4000-8000-000000000000",
        "email": "",
        "display_name": "",
        "first_name": "",
    }
