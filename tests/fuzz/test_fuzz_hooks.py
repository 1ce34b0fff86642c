"""Fuzzing the hook bodies through the real internal listener, with valid credentials:
the verification hook, the identity hook (its query too) and the login backoff's
compatibility endpoints.

Properties: whatever the body (any JSON document, payloads close to what Kratos' Jsonnet
sends, bytes that are not JSON or not UTF-8) and whatever the credential header carries,
every answer is one the README documents for that endpoint — a 200 (or pre-persist 204) in
its own shape, 401/400/413 in Kratos' error shape, 403 ``{"allowed": false, …}`` from
before-login — never a 500, with no ERROR line logged and the 500 counter unmoved.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import strategies as st

from tests.conftest import Kratos, ServiceFactory
from tests.fuzz.support import (
    SHARED_RANDOM,
    errors_logged,
    fuzz_async,
    internal_errors,
    is_kratos_error,
)
from tests.support.rawhttp import raw_request

pytestmark = [pytest.mark.integration, SHARED_RANDOM]

KEY = "fuzz-hook-key-0123456789"
BASIC = "kratos:hook-password"

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
ids = st.one_of(
    st.uuids().map(str),
    st.sampled_from(
        ["00000000-0000-0000-0000-000000000000", "{00000000-0000-0000-0000-000000000000}",
         "URN:UUID:6BA7B810-9DAD-11D1-80B4-00C04FD430C8", "6ba7b8109dad11d180b400c04fd430c8",
         "", " ", "not-a-uuid", "../../admin", "%2e%2e", "a" * 300]
    ),
    json_values,
)  # fmt: skip
texts = st.one_of(st.text(max_size=20), json_values)
traits = st.fixed_dictionaries(
    {},
    optional={
        "email": texts,
        "name": st.one_of(
            st.fixed_dictionaries({}, optional={"first": texts, "last": texts}), texts
        ),
        "first_name": texts,
        "display_name": texts,
    },
)
identities = st.fixed_dictionaries(
    {"id": ids},
    optional={"traits": st.one_of(traits, json_values), "metadata_public": json_values},
)
payloads = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={"identity_id": ids, "email": texts, "display_name": texts, "first_name": texts},
    ),
    identities,
    st.fixed_dictionaries({"identity": st.one_of(identities, json_values)}),
    st.fixed_dictionaries(
        {},
        optional={
            "identifier": texts,
            "client_ip": st.one_of(st.sampled_from(["203.0.113.9", "::1", "300.1.1.1", ""]), texts),
            "flow_id": st.one_of(st.uuids().map(str), texts),
            "identity_id": ids,
        },
    ),
    json_values,
)
bodies = st.one_of(
    payloads.map(orjson.dumps),
    payloads.map(orjson.dumps),
    st.binary(max_size=64),
    st.sampled_from(
        [b"", b"{", b'{"identity_id": "\xff"}', b"[" * 2000, b"1e999", b"\xef\xbb\xbf{}"]
    ),
)
ENDPOINTS = [
    "/hooks/kratos/verification",
    "/hooks/kratos/identity?point=login",
    "/hooks/kratos/identity?point=registration&mode=pre-persist",
    "/hooks/kratos/identity?point=nowhere",
    "/hooks/kratos/identity?mode=post",
    "/hooks/kratos/login-backoff/before-login",
    "/hooks/kratos/login-backoff/after-login",
]
credentials = st.one_of(
    st.just(("X-Kratos-Hooks-Key", KEY)),
    st.just(("X-Kratos-Hooks-Key", KEY)),
    st.just(("Authorization", "Basic a3JhdG9zOmhvb2stcGFzc3dvcmQ=")),
    st.tuples(
        st.sampled_from(["X-Kratos-Hooks-Key", "Authorization"]),
        st.one_of(
            st.sampled_from(["Basic", "Basic !!!", "Basic " + "=" * 3, "Bearer x", KEY + "\xff"]),
            st.text(
                # Field-value bytes (DEL is refused by aiohttp's HTTP parser, before any handler).
                st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
                max_size=30,
            ),
        ),
    ),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/json; charset=latin-1", ""]
)


def problem(endpoint: str, status: int, body: bytes, authorized: bool) -> str | None:
    """What is wrong with this answer, or None when the README documents it."""
    if status == 401:
        return None if is_kratos_error(body, 401) else "401 not in Kratos' error shape"
    if not authorized:
        return f"{status} for a bad credential"
    if status in (400, 413):
        return None if is_kratos_error(body, status) else f"{status} not in Kratos' error shape"
    if status == 204:
        return None if "pre-persist" in endpoint else "204 outside pre-persist"
    document: Any = orjson.loads(body) if body else None
    if not isinstance(document, dict):
        return f"{status} {body[:100]!r}"
    if endpoint.endswith("before-login"):
        if status == 200 and document.get("allowed") is True:
            return None
        ok = status == 403 and document.get("allowed") is False
        return None if ok else f"{status} {document}"
    if endpoint.endswith("after-login"):
        return None if status == 200 and isinstance(document.get("reset"), bool) else str(document)
    if status == 200 and ("status" in document or "identity" in document):
        return None
    return f"{status} {document}"


async def test_every_hook_answers_any_body_as_documented(
    kratos: Kratos,
    start_service: ServiceFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    svc = await start_service(
        KRATOS_PUBLIC_URL=kratos.public_url,
        KRATOS_ADMIN_URL=kratos.admin_url,
        HOOKS_API_KEYS=KEY,
        HOOKS_BASIC_AUTH=BASIC,
        HOOKS_MAX_BODY_SIZE="2048",
        HOOKS_PLATFORM_URL="https://platform.example",
        SPOOL_DIR=str(tmp_path / "spool"),
        HOOKS_HTTP_TIMEOUT="0.3",
        BACKOFF_SECRET="fuzz-secret",
    )
    known = kratos.state.add_identity("known@example.com", "pw")
    port = svc.running.internal_port
    async with aiohttp.ClientSession() as http:
        before = await internal_errors(http, svc.internal_url)
    seen: Counter[tuple[str, int]] = Counter()

    async def check(case: tuple[str, bytes, tuple[str, str], str, int]) -> None:
        endpoint, body, (name, value), content_type, padding = case
        body = body.replace(b"KNOWN", known["id"].encode()) + b" " * padding
        lines = [
            f"POST {endpoint} HTTP/1.1",
            "Host: internal",
            "Connection: close",
            f"{name}: {value}",
            f"Content-Length: {len(body)}",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        answer = await raw_request(port, "\r\n".join(lines), body)
        authorized = (name, value) in {
            ("X-Kratos-Hooks-Key", KEY),
            ("Authorization", "Basic a3JhdG9zOmhvb2stcGFzc3dvcmQ="),
        }
        seen[endpoint.partition("?")[0].rsplit("/", 1)[1], answer.status] += 1
        wrong = problem(endpoint, answer.status, answer.body, authorized)
        assert wrong is None, f"{wrong} for {endpoint} {name}: {value!r} body {body[:120]!r}"

    cases = st.tuples(
        st.sampled_from(ENDPOINTS),
        st.one_of(bodies, st.just(orjson.dumps({"identity_id": "KNOWN"}))),
        credentials,
        content_types,
        st.sampled_from([0, 0, 0, 3000]),  # now and then past HOOKS_MAX_BODY_SIZE
    )
    assert await fuzz_async(cases, check, default=400) > 0
    async with aiohttp.ClientSession() as http:
        assert await internal_errors(http, svc.internal_url) == before
    assert errors_logged(caplog.records) == []
    # The examples reached every kind of answer (a fuzzer stuck on 401s would prove nothing).
    statuses = {status for _, status in seen}
    assert {200, 400, 401, 413} <= statuses, seen
    assert {endpoint for endpoint, status in seen if status == 200} >= {
        "verification",
        "identity",
        "before-login",
        "after-login",
    }, seen
