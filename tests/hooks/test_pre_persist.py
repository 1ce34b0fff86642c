"""The identity hook acts on what Kratos really sends: at registration pre-persist
(``response.parse: true``) ``ctx.identity.id`` is the nil UUID, which is never a lookup key —
the platform user is found by the configured trait, or the answer is 204."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import pytest

from handlers.hooks.hook_keys import OUTBOX, RELAY
from handlers.hooks.outbox import Entry
from tests.conftest import Kratos, Service
from tests.hooks.conftest import HooksFactory, Platform, UserTable, wait_until
from tests.hooks.test_identity import RESOLUTIONS, patches, post, ready
from tests.support.metrics import metric_total
from tests.support.relay import FaultyRelay

NIL = "00000000-0000-0000-0000-000000000000"
PRE_PERSIST = "?point=registration&mode=pre-persist"
SPELLINGS = [
    NIL,
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "00000000000000000000000000000000",
    " 00000000-0000-0000-0000-000000000000 ",
]


def trait_env(users: UserTable, platform: Platform, **extra: str) -> dict[str, str]:
    """The platform database (with the shipped default queries) and the platform API."""
    return {
        "HOOKS_PLATFORM_DATABASE_URL": users.platform_dsn,
        "HOOKS_PLATFORM_API_URL": platform.url,
        "HOOKS_RESOLVE_TRAIT": "email",
        **extra,
    }


def registering(email: str, identity_id: str = NIL, metadata: Any = None) -> dict[str, Any]:
    """``{"identity": ctx.identity}`` as Kratos renders it before the identity is stored."""
    return {
        "identity": {
            "id": identity_id,
            "schema_id": "default",
            "state": "active",
            "traits": {"email": email, "name": {"first": "Ada", "last": "Lovelace"}},
            "metadata_public": metadata,
        }
    }


def nil_squatter(platform: Platform) -> None:
    """The platform API would hand out a user for the nil id, if it were ever asked."""
    platform.state.users[NIL] = ("user-of-nobody", "agent-of-nobody")


def admin_calls(kratos: Kratos) -> list[str]:
    return [f"{r.method} {r.path}" for r in kratos.state.requests if r.app == "admin"]


def internal_app(svc: Service) -> Any:
    return svc.running.internal_app


async def pending(http: aiohttp.ClientSession, svc: Service) -> int:
    return int((await ready(http, svc.internal_url))["checks"]["hooks_outbox"]["pending"])


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_nil_id_is_resolved_by_the_email_trait(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    platform: Platform,
    spelling: str,
) -> None:
    svc = await hooks_service(wait_for_broker=False, **trait_env(user_table, platform))
    user_id, agent_id = await user_table.add(None, "ada@example.org")  # invited, not bound yet
    await user_table.add(NIL, "nobody@example.org")  # a row bound to the nil id: a trap
    nil_squatter(platform)

    status, body = await post(
        http,
        svc.internal_url,
        registering("ada@example.org", spelling, {"theme": "dark"}),
        PRE_PERSIST,
    )

    assert status == 200
    assert body == {
        "identity": {
            "metadata_public": {
                "theme": "dark",
                "alkemio_actor_id": user_id,
                "alkemio_agent_id": agent_id,
            }
        }
    }
    assert admin_calls(kratos) == []  # nothing read or written in Kratos' name
    assert platform.state.calls == 0  # the API only knows authenticationId: never asked
    assert await pending(http, svc) == 0


async def test_nil_id_without_a_trait_setting_answers_204_and_looks_nothing_up(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    platform: Platform,
) -> None:
    env = trait_env(user_table, platform)
    del env["HOOKS_RESOLVE_TRAIT"]
    svc = await hooks_service(wait_for_broker=False, **env)
    await user_table.add(NIL, "ada@example.org")  # even the registrant's own email
    nil_squatter(platform)
    asked = await metric_total(http, svc.internal_url, RESOLUTIONS)

    for spelling in SPELLINGS:
        assert await post(
            http, svc.internal_url, registering("ada@example.org", spelling), PRE_PERSIST
        ) == (204, None)

    assert await metric_total(http, svc.internal_url, RESOLUTIONS) == asked  # no resolver ran
    assert platform.state.calls == 0
    assert admin_calls(kratos) == []
    assert await pending(http, svc) == 0


async def test_a_platform_row_bound_to_the_nil_id_is_never_handed_out(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    platform: Platform,
) -> None:
    svc = await hooks_service(wait_for_broker=False, **trait_env(user_table, platform))
    await user_table.add(NIL, "squatter@example.org")
    nil_squatter(platform)

    # Every new registration: nobody with its email -> 204, not the nil row's ids.
    for email in ("new1@example.org", "new2@example.org", "squatter@example.org"):
        assert await post(http, svc.internal_url, registering(email), PRE_PERSIST) == (204, None)
    # The nil id where a stored identity was expected (a misconfigured hook): a no-op.
    for point in ("login", "verification", "registration"):
        assert await post(http, svc.internal_url, {"identity_id": NIL}, f"?point={point}") == (
            200,
            {"status": "not_persisted"},
        )
    assert await post(http, svc.internal_url, registering("new3@example.org")["identity"]) == (
        200,
        {"status": "not_persisted"},
    )
    assert admin_calls(kratos) == []
    assert platform.state.calls == 0
    assert await pending(http, svc) == 0  # nothing recorded for the relay to retry by nil


async def test_an_outbox_entry_for_the_nil_id_is_dropped_without_a_lookup(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    platform: Platform,
) -> None:
    """An entry an older version recorded for a failed pre-persist call."""
    svc = await hooks_service(wait_for_broker=False, **trait_env(user_table, platform))
    await user_table.add(NIL, "squatter@example.org")
    nil_squatter(platform)
    app = internal_app(svc)
    entry = Entry(f"identity:{NIL}", "identity", {"identity_id": NIL, "point": "registration"})
    await app[OUTBOX].put(entry, reserve=False)
    app[RELAY].kick()

    async def drained() -> bool:
        return await pending(http, svc) == 0

    assert await wait_until(drained)
    assert admin_calls(kratos) == []
    assert platform.state.calls == 0


@pytest.mark.parametrize("policy", ["allow", "interrupt"])
async def test_nil_id_resolution_failure_follows_the_policy_and_records_no_retry(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    platform: Platform,
    relay_to: Any,
    policy: str,
) -> None:
    pg: FaultyRelay = await relay_to("127.0.0.1", 5432)
    pg.cut()
    env = trait_env(user_table, platform, HOOKS_IDENTITY_FAILURE_POLICY=policy)
    env["HOOKS_PLATFORM_DATABASE_URL"] = env["HOOKS_PLATFORM_DATABASE_URL"].replace(
        "127.0.0.1:5432", f"127.0.0.1:{pg.port}"
    )
    svc = await hooks_service(wait_for_broker=False, **env)
    status, body = await post(http, svc.internal_url, registering("ada@example.org"), PRE_PERSIST)
    if policy == "allow":
        assert (status, body) == (204, None)  # the registration goes on, without the ids
    else:
        assert status == 400
        assert body["messages"][0]["instance_ptr"] == "#/"
    report = await ready(http, svc.internal_url)
    assert report["checks"]["hooks_dependencies"]["postgres_trait"]["status"] == "degraded"
    await asyncio.sleep(0.3)  # a relay pass (HOOKS_RELAY_INTERVAL 0.2) would have run
    assert await pending(http, svc) == 0  # no id to retry by
    assert admin_calls(kratos) == []
    assert platform.state.calls == 0  # not a reason to ask the API by the nil id either


async def test_a_stored_identity_is_still_resolved_by_its_id(
    hooks_service: HooksFactory,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    user_table: UserTable,
    platform: Platform,
) -> None:
    svc = await hooks_service(wait_for_broker=False, **trait_env(user_table, platform))
    identity = kratos.state.add_identity("ada@example.org", "pw")
    # Bound to this identity; the traits' email is no longer the platform's, and another,
    # unbound row carries it: the id decides, the trait is not consulted.
    user_id, agent_id = await user_table.add(identity["id"], "ada.old@example.org")
    await user_table.add(None, "ada@example.org")
    assert await post(http, svc.internal_url, {"identity_id": identity["id"]}, "?point=login") == (
        200,
        {"status": "patched"},
    )
    assert patches(kratos, identity["id"]) == [
        [
            {
                "op": "add",
                "path": "/metadata_public",
                "value": {"alkemio_actor_id": user_id, "alkemio_agent_id": agent_id},
            }
        ]
    ]
    # A pre-persist call carrying a real id (an older Kratos) also goes by the id.
    other = str(uuid.uuid4())
    bound_user, bound_agent = await user_table.add(other, "bob.platform@example.org")
    status, body = await post(
        http, svc.internal_url, registering("bob@example.org", other), PRE_PERSIST
    )
    assert (status, body) == (
        200,
        {
            "identity": {
                "metadata_public": {"alkemio_actor_id": bound_user, "alkemio_agent_id": bound_agent}
            }
        },
    )
