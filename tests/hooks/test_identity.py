"""POST /hooks/kratos/identity: resolution chain, minimal PATCHes, breakers, failure policies."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import aiohttp
import orjson
import pytest

from proxy.kernel.logs import JsonFormatter
from tests.conftest import Kratos
from tests.hooks.conftest import HEADER, HooksFactory, Platform, UserTable, wait_until
from tests.support.metrics import metric_total
from tests.support.relay import FaultyRelay

URL = "/hooks/kratos/identity"
RESOLUTIONS = "kratos_hooks_identity_resolutions_total"


def patches(kratos: Kratos, identity_id: str) -> list[Any]:
    return [
        orjson.loads(r.body)
        for r in kratos.state.requests
        if r.method == "PATCH" and r.path == f"/admin/identities/{identity_id}"
    ]


def gets(kratos: Kratos, identity_id: str) -> int:
    return kratos.state.count("GET", f"/admin/identities/{identity_id}")


async def post(
    http: aiohttp.ClientSession, base: str, body: Any, query: str = ""
) -> tuple[int, Any]:
    async with http.post(base + URL + query, json=body, headers=HEADER) as response:
        text = await response.read()
        return response.status, orjson.loads(text) if text else None


async def ready(http: aiohttp.ClientSession, base: str) -> Any:
    async with http.get(base + "/health/ready") as response:
        assert response.status == 200
        return await response.json()


def db_env(users: UserTable) -> dict[str, str]:
    return {
        "HOOKS_PLATFORM_DATABASE_URL": users.dsn,
        "HOOKS_RESOLVE_QUERY": users.query,
        "HOOKS_RESOLVERS": "postgres",
    }


async def test_postgres_resolution_adds_the_whole_object_then_never_writes_again(
    hooks_service: HooksFactory, kratos: Kratos, http: aiohttp.ClientSession, user_table: UserTable
) -> None:
    svc = await hooks_service(
        wait_for_broker=False, KRATOS_ADMIN_TOKEN="ory_pat_admin", **db_env(user_table)
    )
    identity = kratos.state.add_identity("ada@example.org", "pw")
    user_id, agent_id = await user_table.add(identity["id"], "ada@example.org")

    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
        200,
        {"status": "patched"},
    )
    wanted = {"alkemio_actor_id": user_id, "alkemio_agent_id": agent_id}
    assert patches(kratos, identity["id"]) == [
        [{"op": "add", "path": "/metadata_public", "value": wanted}]
    ]
    assert kratos.state.identities[identity["id"]]["metadata_public"] == wanted
    patch = next(r for r in kratos.state.requests if r.method == "PATCH")
    assert patch.headers["Authorization"] == "Bearer ory_pat_admin"

    # Every later login: one read, no write.
    for _ in range(3):
        assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
            200,
            {"status": "unchanged"},
        )
    assert len(patches(kratos, identity["id"])) == 1


async def test_whole_identity_merges_single_keys_without_reading_kratos(
    hooks_service: HooksFactory, kratos: Kratos, http: aiohttp.ClientSession, user_table: UserTable
) -> None:
    svc = await hooks_service(wait_for_broker=False, **db_env(user_table))
    identity = kratos.state.add_identity(
        "bob@example.org",
        "pw",
        metadata_public={"theme": "dark", "alkemio_actor_id": "stale"},
    )
    user_id, agent_id = await user_table.add(identity["id"], "bob@example.org")
    status, body = await post(http, svc.internal_url, {"identity": identity})
    assert (status, body) == (200, {"status": "patched"})
    assert gets(kratos, identity["id"]) == 0
    assert patches(kratos, identity["id"]) == [
        [
            {"op": "replace", "path": "/metadata_public/alkemio_actor_id", "value": user_id},
            {"op": "add", "path": "/metadata_public/alkemio_agent_id", "value": agent_id},
        ]
    ]
    assert kratos.state.identities[identity["id"]]["metadata_public"] == {
        "theme": "dark",
        "alkemio_actor_id": user_id,
        "alkemio_agent_id": agent_id,
    }
    # The same ctx.identity as Kratos would now send: nothing to write, nothing read.
    fresh = kratos.state.identities[identity["id"]]
    assert await post(http, svc.internal_url, fresh) == (200, {"status": "unchanged"})
    assert len(patches(kratos, identity["id"])) == 1
    assert gets(kratos, identity["id"]) == 0


async def test_unknown_platform_user_is_not_an_error(
    hooks_service: HooksFactory, kratos: Kratos, http: aiohttp.ClientSession, user_table: UserTable
) -> None:
    svc = await hooks_service(wait_for_broker=False, **db_env(user_table))
    identity = kratos.state.add_identity("new@example.org", "pw")
    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
        200,
        {"status": "not_found"},
    )
    assert patches(kratos, identity["id"]) == []
    async with http.get(svc.internal_url + "/metrics") as response:
        text = await response.text()
    assert 'kratos_hooks_hook_requests_total{hook="identity",outcome="not_found"}' in text


async def test_postgres_down_falls_back_to_the_platform_api(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    platform: Platform,
    relay_to: Any,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pg: FaultyRelay = await relay_to("127.0.0.1", 5432)
    pg.cut()
    dsn = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{pg.port}")
    svc = await hooks_service(
        wait_for_broker=False,
        HOOKS_PLATFORM_DATABASE_URL=dsn,
        HOOKS_PLATFORM_API_URL=platform.url,
    )
    caplog.set_level(logging.WARNING, logger="kratos_hooks.hooks")
    identity = kratos.state.add_identity("eve@example.org", "pw")
    platform.state.users[identity["id"]] = ("user-1", "agent-1")
    platform.state.fail_next = 1  # a 503 first: retried by aiohttp-retry
    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
        200,
        {"status": "patched"},
    )
    assert platform.state.calls == 2
    assert kratos.state.identities[identity["id"]]["metadata_public"] == {
        "alkemio_actor_id": "user-1",
        "alkemio_agent_id": "agent-1",
    }
    report = await ready(http, svc.internal_url)
    assert report["checks"]["hooks_dependencies"]["postgres"]["status"] == "degraded"
    unavailable = {"resolver": "postgres", "result": "unavailable"}
    assert await metric_total(http, svc.internal_url, RESOLUTIONS, **unavailable) >= 1
    fallbacks = [r for r in caplog.records if r.name == "kratos_hooks.hooks.resolvers"]
    assert [(r.getMessage(), r.__dict__["answered_by"]) for r in fallbacks] == [
        ("resolver unavailable, the next one answered", "api")
    ]


async def test_api_404_is_not_found(
    hooks_service: HooksFactory, kratos: Kratos, http: aiohttp.ClientSession, platform: Platform
) -> None:
    svc = await hooks_service(wait_for_broker=False, HOOKS_PLATFORM_API_URL=platform.url)
    identity = kratos.state.add_identity("x@example.org", "pw")
    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
        200,
        {"status": "not_found"},
    )
    assert platform.state.calls == 1
    assert patches(kratos, identity["id"]) == []


async def test_breaker_opens_on_a_failing_api_and_closes_after_cooldown(
    hooks_service: HooksFactory, kratos: Kratos, http: aiohttp.ClientSession, platform: Platform
) -> None:
    svc = await hooks_service(
        wait_for_broker=False,
        HOOKS_PLATFORM_API_URL=platform.url,
        HOOKS_HTTP_ATTEMPTS="1",
        HOOKS_BREAKER_FAILURES="2",
        HOOKS_BREAKER_COOLDOWN="0.5",
        HOOKS_RELAY_INTERVAL="60",
    )
    identity = kratos.state.add_identity("z@example.org", "pw")
    platform.state.users[identity["id"]] = ("user-z", "agent-z")
    platform.state.fail_next = 100
    for _ in range(2):
        status, body = await post(http, svc.internal_url, {"identity_id": identity["id"]})
        assert (status, body) == (200, {"status": "retry_later"})
    assert platform.state.calls == 2
    report = await ready(http, svc.internal_url)
    assert report["status"] == "degraded"
    assert report["checks"]["hooks_dependencies"]["api"]["state"] == "open"
    async with http.get(svc.internal_url + "/metrics") as response:
        assert 'kratos_hooks_breaker_state{name="platform_api"} 2.0' in await response.text()

    # Open: the API is not called at all.
    await post(http, svc.internal_url, {"identity_id": identity["id"]})
    assert platform.state.calls == 2

    platform.state.fail_next = 0
    await asyncio.sleep(0.6)
    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
        200,
        {"status": "patched"},
    )
    report = await ready(http, svc.internal_url)
    assert report["checks"]["hooks_dependencies"]["api"]["state"] == "closed"


async def test_allow_policy_answers_200_and_the_relay_repairs_later(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    platform: Platform,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = await hooks_service(
        wait_for_broker=False,
        HOOKS_PLATFORM_API_URL=platform.url,
        HOOKS_HTTP_ATTEMPTS="1",
        HOOKS_BREAKER_FAILURES="50",
    )
    caplog.set_level(logging.DEBUG)
    identity = kratos.state.add_identity("later@example.org", "pw")
    platform.state.users[identity["id"]] = ("user-l", "agent-l")
    platform.state.fail_next = 2  # the hook's call, then the relay's first retry
    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
        200,
        {"status": "retry_later"},
    )
    assert patches(kratos, identity["id"]) == []

    async def repaired() -> bool:
        return bool(kratos.state.identities[identity["id"]]["metadata_public"])

    assert await wait_until(repaired, timeout=15)
    assert len(patches(kratos, identity["id"])) == 1
    ours = [r for r in caplog.records if r.name.startswith("kratos_hooks")]
    messages = [r.getMessage() for r in ours]
    assert "identity metadata not written" in messages  # the hook's failure
    assert "identity metadata still not written, retrying later" in messages  # the relay's
    # Identity ids are fingerprinted in every line, never logged raw.
    formatter = JsonFormatter()
    assert not [r for r in ours if identity["id"] in formatter.format(r)]


async def test_interrupt_policy_answers_kratos_messages(
    hooks_service: HooksFactory, kratos: Kratos, http: aiohttp.ClientSession, platform: Platform
) -> None:
    svc = await hooks_service(
        wait_for_broker=False,
        HOOKS_PLATFORM_API_URL=platform.url,
        HOOKS_HTTP_ATTEMPTS="1",
        HOOKS_IDENTITY_FAILURE_POLICY_BY_POINT="registration=interrupt",
    )
    identity = kratos.state.add_identity("int@example.org", "pw")
    platform.state.fail_next = 10
    status, body = await post(
        http, svc.internal_url, {"identity_id": identity["id"]}, "?point=registration"
    )
    assert status == 400
    [group] = body["messages"]
    assert group["instance_ptr"] == "#/"
    [message] = group["messages"]
    assert message["type"] == "error"
    assert isinstance(message["id"], int)
    assert message["text"] == "Your account could not be prepared. Please try again in a moment."
    assert "503" not in orjson.dumps(body).decode()  # nothing internal reaches the user
    # Other hook points keep the default (allow).
    status, body = await post(
        http, svc.internal_url, {"identity_id": identity["id"]}, "?point=login"
    )
    assert (status, body) == (200, {"status": "retry_later"})


async def test_budget_bounds_the_answer_when_a_dependency_hangs(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    platform: Platform,
    relay_to: Any,
) -> None:
    hang: FaultyRelay = await relay_to("127.0.0.1", platform.server.port or 0)
    hang.hang()
    svc = await hooks_service(
        wait_for_broker=False,
        HOOKS_PLATFORM_API_URL=hang.url("http"),
        HOOKS_HTTP_TIMEOUT="5",
        HOOKS_BUDGET="0.5",
    )
    identity = kratos.state.add_identity("slow@example.org", "pw")
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await post(http, svc.internal_url, {"identity_id": identity["id"]})
    assert loop.time() - started < 1.5
    assert (status, body) == (200, {"status": "retry_later"})


@pytest.mark.parametrize("existing", [None, {"theme": "dark"}])
async def test_pre_persist_answers_the_merged_metadata(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    existing: dict[str, str] | None,
) -> None:
    svc = await hooks_service(wait_for_broker=False, **db_env(user_table))
    identity_id = str(uuid.uuid4())  # not persisted yet: Kratos knows nothing of it
    user_id, agent_id = await user_table.add(identity_id, f"{identity_id}@example.org")
    ctx_identity = {
        "id": identity_id,
        "traits": {"email": "p@example.org"},
        "metadata_public": existing,
    }
    status, body = await post(
        http, svc.internal_url, {"identity": ctx_identity}, "?point=registration&mode=pre-persist"
    )
    assert status == 200
    assert body == {
        "identity": {
            "metadata_public": {
                **(existing or {}),
                "alkemio_actor_id": user_id,
                "alkemio_agent_id": agent_id,
            }
        }
    }
    assert [r for r in kratos.state.requests if r.app == "admin"] == []
    # Nothing to add: 204, Kratos keeps the identity as it is.
    ctx_identity["metadata_public"] = body["identity"]["metadata_public"]
    status, body = await post(
        http, svc.internal_url, ctx_identity, "?point=registration&mode=pre-persist"
    )
    assert (status, body) == (204, None)


async def test_kratos_admin_breaker_opens_and_the_login_still_proceeds(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    platform: Platform,
    relay_to: Any,
) -> None:
    admin: FaultyRelay = await relay_to("127.0.0.1", kratos.admin.port or 0)
    svc = await hooks_service(
        wait_for_broker=False,
        KRATOS_ADMIN_URL=admin.url("http"),
        HOOKS_PLATFORM_API_URL=platform.url,
        HOOKS_BREAKER_FAILURES="2",
        HOOKS_BREAKER_COOLDOWN="0.5",
        HOOKS_RELAY_INTERVAL="60",
    )
    identity = kratos.state.add_identity("adm@example.org", "pw")
    platform.state.users[identity["id"]] = ("user-a", "agent-a")
    admin.cut()
    for _ in range(3):
        assert await post(http, svc.internal_url, {"identity_id": identity["id"]}) == (
            200,
            {"status": "retry_later"},
        )
    report = await ready(http, svc.internal_url)
    assert report["checks"]["hooks_dependencies"]["kratos_admin"]["state"] == "open"
    async with http.get(svc.internal_url + "/metrics") as response:
        assert 'kratos_hooks_breaker_state{name="kratos_admin"} 2.0' in await response.text()

    admin.restore()
    await asyncio.sleep(0.6)
    # Patched by this call, or just before by the relay retrying the recorded failures.
    status, body = await post(http, svc.internal_url, {"identity_id": identity["id"]})
    assert status == 200
    assert body["status"] in {"patched", "unchanged"}
    assert kratos.state.identities[identity["id"]]["metadata_public"] == {
        "alkemio_actor_id": "user-a",
        "alkemio_agent_id": "agent-a",
    }
    assert len(patches(kratos, identity["id"])) == 1
    report = await ready(http, svc.internal_url)
    assert report["checks"]["hooks_dependencies"]["kratos_admin"]["state"] == "closed"
