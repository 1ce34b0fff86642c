"""Fuzzing the login guard's reading of submissions — bodies, Content-Types, flow ids,
Accept and cookies — through the real public listener in front of the Kratos stand-in.

Properties, for any submission: nothing answers 5xx (the stand-in is up, so a 5xx could only
be the service's own failure), no ERROR line is logged and the 500 counter does not move;
and every answer the guard writes itself (the submission never reached Kratos: a refusal, a
413, a block) is in the caller's format — for a JSON caller Kratos' error JSON or its own
flow carrying the message, for a browser a 303 with a ``Location`` or the small HTML page.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from urllib.parse import quote, urlencode

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
from tests.guard.client import PASSWORD, api_flow, browser_flow, start
from tests.support.rawhttp import dechunk, raw_request

pytestmark = [pytest.mark.integration, SHARED_RANDOM]

texts = st.text(max_size=16)
values = st.one_of(
    texts,
    st.sampled_from(["alice@example.com", " ALICE@example.com", "password", PASSWORD, "", "wrong"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
FIELDS = ["method", "identifier", "password_identifier", "password", "csrf_token", "code", "x"]
fields = st.lists(st.tuples(st.sampled_from(FIELDS), values), max_size=6)
login_fields = st.lists(
    st.tuples(st.sampled_from(["identifier", "password"]), values), min_size=1, max_size=3
).map(lambda pairs: [("method", "password"), *pairs])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """(Content-Type, body) — mostly well-formed submissions of every encoding, some not."""
    pairs = draw(st.one_of(login_fields, fields))
    kind = draw(st.sampled_from(["json", "json", "form", "form", "multipart", "raw", "jsonish"]))
    if kind == "json":
        document = {k: v for k, v in pairs}
        if draw(st.booleans()):
            document[draw(st.sampled_from(FIELDS))] = draw(json_values)
        return draw(st.sampled_from(JSON_TYPES)), orjson.dumps(document)
    if kind == "form":
        return draw(st.sampled_from(FORM_TYPES)), urlencode(pairs).encode()
    if kind == "multipart":
        boundary = draw(st.sampled_from(["b0undary", "x", '"quoted"']))
        dashes = "--" + boundary.strip('"')
        disposition = "Content-Disposition: form-data; name="
        parts = [f'{dashes}\r\n{disposition}"{k}"\r\n\r\n{v}\r\n' for k, v in pairs]
        body = ("".join(parts) + f"{dashes}--\r\n").encode()
        return f"multipart/form-data; boundary={boundary}", body
    if kind == "jsonish":
        return draw(st.sampled_from(JSON_TYPES)), draw(
            st.sampled_from([b"{", b"[]", b"null", b'{"method":"password"}{}', b"\xff\xfe", b""])
        )
    return draw(st.sampled_from(OTHER_TYPES)), draw(st.binary(max_size=80))


JSON_TYPES = [
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "applİcation/json",
    "application/json, text/plain", "text/plain, application/json", "application/json; x",
    "application/json;charset=\"utf-16\"", "application/vnd.api+json",
]  # fmt: skip
FORM_TYPES = [
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8",
    "Application/X-WWW-Form-Urlencoded", "application/x-www-form-urlencoded;;", "",
]  # fmt: skip
OTHER_TYPES = ["text/plain", "multipart/form-data", "multipart/form-data; boundary=", ";", "é/é"]
ACCEPTS = [
    "application/json", "text/html,application/xhtml+xml,*/*;q=0.8", "*/*", "",
    "application/json;q=0, text/html", "text/html;q=x",
]  # fmt: skip


def problem(
    status: int, head: dict[str, str], body: bytes, cookie: bool, reached: bool
) -> str | None:
    """What is wrong with this answer, or None."""
    if status >= 500:
        return f"{status} {body[:200]!r}"
    if reached:
        return None  # Kratos' own answer, passed on unchanged
    content_type = head.get("content-type", "")
    if status == 303 and head.get("location"):
        return None if cookie else "a redirect for a caller without cookies (an app)"
    if content_type.startswith("application/json"):
        document = orjson.loads(body)
        if is_kratos_error(body, status):
            return None
        if status in (400, 429) and isinstance(document, dict) and "ui" in document:
            return None  # the caller's own flow, carrying the lockout message
        return f"{status} JSON of neither shape: {body[:200]!r}"
    if content_type.startswith("text/html") and cookie:
        return None  # the browser's page
    return f"{status} {content_type!r} {body[:120]!r} (cookie={cookie})"


async def test_the_guard_answers_any_submission_in_the_callers_format(
    kratos: Kratos,
    start_service: ServiceFactory,
    redis_url: str,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    svc = await start(
        start_service,
        kratos,
        redis_url,
        redis_prefix,
        BACKOFF_PAIR_FREE="2",
        BACKOFF_MAX_BODY="2048",
        RATE_LIMIT_LOGIN="0",
    )
    kratos.state.add_identity("alice@example.com", PASSWORD)
    port = svc.running.public_port
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        before = await internal_errors(http, svc.internal_url)
        api = await api_flow(http, svc.public_url)
        browser = await browser_flow(http, svc.public_url)
    flows = st.sampled_from(
        [api.id, browser.id, api.id.upper(), "{" + browser.id + "}", f"urn:uuid:{api.id}",
         api.id.replace("-", ""), str(uuid.uuid4()), "", "not-a-flow", "%zz", "%FF"]
    )  # fmt: skip
    seen: Counter[int] = Counter()
    own: Counter[str] = Counter()  # answers the guard wrote itself, by format

    async def check(case: tuple[str, str, tuple[str, bytes], str, bool, bool, int]) -> None:
        method, flow, (content_type, body), accept, cookie, csrf, padding = case
        if csrf and b"csrf_token" not in body and content_type.startswith("application/x-www"):
            body += b"&csrf_token=" + quote(browser.csrf or "").encode()
        body += b" " * padding
        query = "" if flow == "" else f"?flow={flow}"
        lines = [
            f"{method} /self-service/login{query} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Connection: close",
            f"Content-Length: {len(body)}",
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if accept:
            lines.append(f"Accept: {accept}")
        if cookie:
            lines.append(f"Cookie: {browser.cookie}")
        submissions = len([r for r in kratos.state.requests if r.path == "/self-service/login"])
        head_bytes = "\r\n".join(lines).encode().decode("latin-1")  # sent as UTF-8 bytes
        answer = await raw_request(port, head_bytes, body)
        reached = submissions < len(
            [r for r in kratos.state.requests if r.path == "/self-service/login"]
        )
        head = {k.lower(): v for k, v in answer.headers}
        content = (
            dechunk(answer.body) if head.get("transfer-encoding") == "chunked" else answer.body
        )
        seen[answer.status] += 1
        if not reached:
            own[
                "json" if head.get("content-type", "").startswith("application/json") else "page"
            ] += 1
        wrong = problem(answer.status, head, content, cookie, reached)
        assert wrong is None, f"{wrong} for {lines} {body[:200]!r}"

    cases = st.tuples(
        st.sampled_from(["POST", "POST", "POST", "GET"]),
        flows,
        bodies(),
        st.sampled_from(ACCEPTS),
        st.booleans(),
        st.booleans(),
        st.sampled_from([0, 0, 0, 0, 4000]),  # now and then past BACKOFF_MAX_BODY
    )
    assert await fuzz_async(cases, check, default=300) > 0
    async with aiohttp.ClientSession() as http:
        assert await internal_errors(http, svc.internal_url) == before
    assert errors_logged([r for r in caplog.records if r.name.startswith("kratos_hooks")]) == []
    assert {303, 400, 413} <= set(seen), seen
    assert own["json"] > 0 and own["page"] > 0, own
