"""What every hook shares: authentication, the 503 of an unconfigured hook, the body bound."""

from __future__ import annotations

import base64
import uuid

import aiohttp
import pytest

from tests.conftest import ServiceFactory
from tests.hooks.conftest import API_KEY, HEADER, HooksFactory

VERIFICATION = "/hooks/kratos/verification"
IDENTITY = "/hooks/kratos/identity"


@pytest.mark.parametrize("path", [VERIFICATION, IDENTITY])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Kratos-Hooks-Key": "wrong"},
        {"X-Kratos-Hooks-Key": API_KEY[:-1]},
        {"Authorization": "Basic " + base64.b64encode(b"kratos:nope").decode()},
    ],
)
async def test_bad_or_missing_credentials_get_401_json(
    hooks_service: HooksFactory, http: aiohttp.ClientSession, path: str, headers: dict[str, str]
) -> None:
    svc = await hooks_service(wait_for_broker=False)
    async with http.post(svc.internal_url + path, json={}, headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/json"
        body = await response.json()
    assert body["error"]["code"] == 401
    async with http.get(svc.internal_url + "/metrics") as response:
        text = await response.text()
    hook = path.rsplit("/", 1)[-1]
    assert f'kratos_hooks_hook_requests_total{{hook="{hook}",outcome="unauthorized"}}' in text


async def test_every_rotated_key_and_basic_auth_are_accepted(
    hooks_service: HooksFactory, http: aiohttp.ClientSession
) -> None:
    svc = await hooks_service(wait_for_broker=False, HOOKS_BASIC_AUTH="kratos:s3cret:with-colon")
    basic = "Basic " + base64.b64encode(b"kratos:s3cret:with-colon").decode()
    for headers in (
        HEADER,
        {"X-Kratos-Hooks-Key": "old-key-retired-soon"},
        {"Authorization": basic},
    ):
        async with http.post(svc.internal_url + VERIFICATION, json={}, headers=headers) as response:
            assert response.status == 200, headers
            assert (await response.json())["status"] == "skipped"


async def test_configurable_header_name(
    hooks_service: HooksFactory, http: aiohttp.ClientSession
) -> None:
    svc = await hooks_service(wait_for_broker=False, HOOKS_API_KEY_HEADER="Authorization")
    headers = {"Authorization": API_KEY}
    async with http.post(svc.internal_url + VERIFICATION, json={}, headers=headers) as response:
        assert response.status == 200
    async with http.post(svc.internal_url + VERIFICATION, json={}, headers=HEADER) as response:
        assert response.status == 401


async def test_unconfigured_hooks_answer_503_naming_the_setting(
    start_service: ServiceFactory, http: aiohttp.ClientSession
) -> None:
    svc = await start_service()  # no configuration at all: the service still starts
    async with http.post(svc.internal_url + VERIFICATION, json={}) as response:
        assert response.status == 503
        body = await response.json()
    assert "HOOKS_API_KEYS" in body["error"]["reason"]
    async with http.get(svc.internal_url + "/health/ready") as response:
        assert response.status == 200


async def test_insecure_no_auth_serves_without_credentials(
    start_service: ServiceFactory, http: aiohttp.ClientSession, tmp_path: object
) -> None:
    svc = await start_service(HOOKS_INSECURE_NO_AUTH="true", SPOOL_DIR=f"{tmp_path}/spool")
    async with http.post(svc.internal_url + VERIFICATION, json={}) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "skipped"


async def test_body_over_the_bound_is_413(
    hooks_service: HooksFactory, http: aiohttp.ClientSession
) -> None:
    svc = await hooks_service(wait_for_broker=False, HOOKS_MAX_BODY_SIZE="1024")
    big = {"identity_id": str(uuid.uuid4()), "padding": "x" * 2048}
    async with http.post(svc.internal_url + IDENTITY, json=big, headers=HEADER) as response:
        assert response.status == 413
        assert (await response.json())["error"]["code"] == 413

    async def chunked() -> object:
        for _ in range(4):
            yield b"x" * 512

    async with http.post(svc.internal_url + IDENTITY, data=chunked(), headers=HEADER) as response:
        assert response.status == 413


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "JSON"),
        (b'{"identity_id": 42}', "identity_id"),
        (b'{"identity_id": "not-a-uuid"}', "identity_id"),
        (b'{"identity": {"traits": {}}}', "identity.id"),
    ],
)
async def test_identity_hook_rejects_invalid_json_naming_the_field(
    hooks_service: HooksFactory, http: aiohttp.ClientSession, body: bytes, field: str
) -> None:
    svc = await hooks_service(wait_for_broker=False)
    headers = {**HEADER, "Content-Type": "application/json"}
    async with http.post(svc.internal_url + IDENTITY, data=body, headers=headers) as response:
        assert response.status == 400
        assert field in (await response.json())["error"]["reason"]
