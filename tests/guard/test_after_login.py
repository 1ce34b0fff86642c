"""``/after-login`` called with only an identity id: the identifiers come from Kratos' Admin
API, and an Admin API that cannot answer never turns into an error Kratos would see."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from proxy.guard.compat import password_identifiers
from tests.conftest import Kratos, Service
from tests.guard.client import PASSWORD
from tests.guard.conftest import Guarded

BASE = "/hooks/kratos/login-backoff"
IP = "192.0.2.10"
KEY = "after-login-key-0123456789"
AUTH = {"X-Kratos-Hooks-Key": KEY}


async def before(http: aiohttp.ClientSession, svc: Service, identifier: str) -> int:
    body = {"identifier": identifier, "client_ip": IP}
    async with http.post(
        f"{svc.internal_url}{BASE}/before-login", json=body, headers=AUTH
    ) as response:
        return response.status


async def after(http: aiohttp.ClientSession, svc: Service, body: dict[str, str]) -> object:
    async with http.post(
        f"{svc.internal_url}{BASE}/after-login", json=body, headers=AUTH
    ) as response:
        assert response.status == 200
        return await response.json()


async def lookups(http: aiohttp.ClientSession, svc: Service, result: str) -> float:
    async with http.get(f"{svc.internal_url}/metrics") as response:
        text = (await response.read()).decode()
    wanted = f'kratos_hooks_backoff_identity_lookups_total{{result="{result}"}} '
    return sum(float(line[len(wanted) :]) for line in text.splitlines() if line.startswith(wanted))


async def lock(http: aiohttp.ClientSession, svc: Service, identifier: str) -> None:
    """Count attempts until the account is held (BACKOFF_PAIR_FREE=2: the third)."""
    assert [await before(http, svc, identifier) for _ in range(3)] == [200, 200, 403]


def test_password_identifiers_of_an_admin_identity() -> None:
    identity = {"credentials": {"password": {"identifiers": ["a@example.com", "alice", 5, ""]}}}
    assert password_identifiers(identity) == ["a@example.com", "alice"]
    assert password_identifiers({"credentials": {"oidc": {"identifiers": ["google:1"]}}}) == []
    assert password_identifiers({"credentials": None}) == []
    assert password_identifiers({}) == []


async def test_identity_id_alone_resets_every_password_identifier(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    identity = kratos.state.add_identity("carol@example.com", PASSWORD)
    kratos.state.passwords[identity["id"]].identifiers.append("carol")  # and a username
    other = kratos.state.add_identity("dave@example.com", PASSWORD)
    svc = await guarded(BACKOFF_PAIR_FREE="2", HOOKS_API_KEYS=KEY)
    for identifier in ("Carol@Example.com", "CAROL", "dave@example.com"):
        await lock(http, svc, identifier)
    before_ok = await lookups(http, svc, "ok")

    answer = await after(http, svc, {"identity_id": identity["id"], "client_ip": IP})

    assert answer == {"reset": True}
    assert kratos.state.count("GET", f"/admin/identities/{identity['id']}") == 1
    assert await lookups(http, svc, "ok") == before_ok + 1
    assert await before(http, svc, "carol@example.com") == 200
    assert await before(http, svc, "carol") == 200
    assert await before(http, svc, "dave@example.com") == 403  # someone else's account
    assert other["id"] != identity["id"]


async def test_unknown_identity_or_admin_api_down_answers_200_without_a_reset(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    identity = kratos.state.add_identity("erin@example.com", PASSWORD)
    svc = await guarded(BACKOFF_PAIR_FREE="2", HOOKS_API_KEYS=KEY)
    await lock(http, svc, "erin@example.com")
    caplog.set_level(logging.WARNING, logger="kratos_hooks.guard")
    not_found = await lookups(http, svc, "not_found")
    unavailable = await lookups(http, svc, "unavailable")

    gone = await after(http, svc, {"identity_id": "00000000-0000-4000-8000-000000000000"})
    assert gone == {"reset": False, "reason": "identity_not_found"}
    assert await lookups(http, svc, "not_found") == not_found + 1

    await kratos.admin.close()
    down = await after(http, svc, {"identity_id": identity["id"], "client_ip": IP})
    assert down == {"reset": False, "reason": "kratos_admin_unavailable"}
    assert await lookups(http, svc, "unavailable") == unavailable + 1
    assert await before(http, svc, "erin@example.com") == 403  # nothing was reset

    warnings = [r for r in caplog.records if "identity lookup failed" in r.getMessage()]
    assert len(warnings) == 2
    for record in warnings:
        assert record.levelno == logging.WARNING
        assert "erin" not in repr(record.__dict__).lower()
        assert identity["id"] not in repr(record.__dict__)


async def test_neither_identifier_nor_identity_resets_nothing(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(HOOKS_API_KEYS=KEY)
    assert await after(http, svc, {"client_ip": IP}) == {"reset": False, "reason": "no_identifier"}
    assert kratos.state.count("GET", "/admin/identities") == 0
