"""``kratos-hooks reconcile identities`` over more than a thousand identities, several pages."""

from __future__ import annotations

import uuid

from tests.conftest import Kratos
from tests.hooks.cli_helpers import run_cli
from tests.hooks.conftest import Platform

TOTAL = 1050


def seed(kratos: Kratos, platform: Platform) -> dict[str, str]:
    """1,050 identities: 700 bare, 200 correct, 100 stale, 50 unknown to the platform."""
    kinds: dict[str, str] = {}
    for n in range(TOTAL):
        user, agent = f"user-{n}", f"agent-{n}"
        if n < 700:
            kind, meta = "bare", None
        elif n < 900:
            kind, meta = "correct", {"alkemio_actor_id": user, "alkemio_agent_id": agent, "x": 1}
        elif n < 1000:
            kind, meta = "stale", {"alkemio_actor_id": "old", "alkemio_agent_id": agent}
        else:
            kind, meta = "unknown", None
        identity = kratos.state.add_identity(f"u{n}@example.org", "pw", metadata_public=meta)
        kinds[identity["id"]] = kind
        if kind != "unknown":
            platform.state.users[identity["id"]] = (user, agent)
    return kinds


async def test_reconcile_repairs_every_page_and_is_idempotent(
    kratos: Kratos, platform: Platform
) -> None:
    kinds = seed(kratos, platform)
    env = {
        "KRATOS_ADMIN_URL": kratos.admin_url,
        "HOOKS_PLATFORM_API_URL": platform.url,
        "HOOKS_RESOLVERS": "api",
    }
    argv = ["reconcile", "identities", "--concurrency", "16", "--page-size", "200"]

    code, out, err = await run_cli([*argv, "--dry-run"], **env)
    assert code == 0, err
    assert out.strip() == ("seen 1050, already correct 200, to repair 800, not found 50, failed 0")
    assert not any(r.method == "PATCH" for r in kratos.state.requests)
    assert "seen 1050" in err  # the last progress line
    assert kratos.state.count("GET", "/admin/identities") == 6  # 1,050 / 200: six pages

    code, out, _ = await run_cli(argv, **env)
    assert code == 0
    assert out.strip() == "seen 1050, already correct 200, repaired 800, not found 50, failed 0"
    assert sum(r.method == "PATCH" for r in kratos.state.requests) == 800
    for identity_id, kind in kinds.items():
        meta = kratos.state.identities[identity_id]["metadata_public"]
        if kind == "unknown":
            assert meta is None
        else:
            user, agent = platform.state.users[identity_id]
            assert meta["alkemio_actor_id"] == user
            assert meta["alkemio_agent_id"] == agent
            if kind == "correct":
                assert meta["x"] == 1  # other keys survive

    kratos.state.reset_calls()
    code, out, _ = await run_cli(argv, **env)
    assert code == 0
    assert out.strip() == "seen 1050, already correct 1000, repaired 0, not found 50, failed 0"
    assert not any(r.method == "PATCH" for r in kratos.state.requests)


async def test_reconcile_reports_failures_and_exits_1(kratos: Kratos, platform: Platform) -> None:
    for n in range(5):
        identity = kratos.state.add_identity(f"f{n}@example.org", "pw")
        platform.state.users[identity["id"]] = (str(uuid.uuid4()), str(uuid.uuid4()))
    platform.state.fail_next = 1000
    code, out, _ = await run_cli(
        ["reconcile", "identities"],
        KRATOS_ADMIN_URL=kratos.admin_url,
        HOOKS_PLATFORM_API_URL=platform.url,
        HOOKS_RESOLVERS="api",
        HOOKS_HTTP_ATTEMPTS="1",
    )
    assert code == 1
    assert out.strip().endswith("failed 5")
    assert not any(r.method == "PATCH" for r in kratos.state.requests)
