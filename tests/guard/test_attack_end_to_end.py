"""A smaller attack through the real listener with the guard's clock driven by the test: the
counts that reach the stand-in equal those of the store-level simulation of the same
schedule (which ``test_attack_simulation`` runs at full scale)."""

from __future__ import annotations

import aiohttp

from proxy.guard.core import Guard
from proxy.guard.identity import Keyer
from proxy.guard.store import MemoryStore
from tests.conftest import Kratos
from tests.guard.client import Flow, api_flow, guards, submit
from tests.guard.conftest import Guarded
from tests.guard.simulation import Clock, rotating_ips, run, spraying


async def _attack(
    http: aiohttp.ClientSession, base: str, flow: Flow, clock: Clock, schedule: list
) -> None:
    start = clock.now
    for offset, identifier, ip in schedule:
        clock.now = start + offset
        await submit(http, base, flow, identifier, forwarded_for=ip)


async def test_rotating_ips_and_spraying_end_to_end(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    svc = await guarded(TRUSTED_PROXIES="127.0.0.1/32")
    clock = Clock()
    for guard in guards(svc):
        guard.clock = clock
    flow = await api_flow(http, svc.public_url)
    rotating = rotating_ips(600, 4.0, ips=20)  # 150 attempts over ten simulated minutes
    spray = spraying(600, 4.0, accounts=100)

    model_clock = Clock()
    model = Guard(
        svc.settings, MemoryStore(), fallback=MemoryStore(), keyer=Keyer("m"), clock=model_clock
    )
    expected_rotating = (await run(model, model_clock, rotating)).reached

    await _attack(http, svc.public_url, flow, clock, rotating)
    got_rotating = kratos.state.count("POST", "/self-service/login")
    print(
        f"\nend to end, one account from 20 IPs, 150 attempts in 10 min: {got_rotating} "
        f"reached Kratos (model: {expected_rotating})"
    )
    assert got_rotating == expected_rotating
    assert got_rotating < 40

    clock.now += 7200  # a fresh hour: the account's buckets have expired
    model_clock.now = clock.now
    expected_spray = (await run(model, model_clock, spray)).reached
    kratos.state.reset_calls()
    await _attack(http, svc.public_url, flow, clock, spray)
    got_spray = kratos.state.count("POST", "/self-service/login")
    print(
        f"end to end, one IP spraying 100 accounts, 150 attempts in 10 min: {got_spray} "
        f"reached Kratos (model: {expected_spray})"
    )
    assert got_spray == expected_spray
    assert got_spray < 150
