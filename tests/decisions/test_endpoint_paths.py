"""Ambiguous paths through the real internal listener, from each source of the original path:
``X-Forwarded-Uri`` (Traefik, Caddy), ``X-Original-URI`` (nginx) and ``/decisions/<path>``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.decisions.conftest import API, BROWSER, RULES, Decisions, DecisionsFactory
from tests.support.metrics import metric_total

EXTRA = """
[[rules]]
id = "files"
paths = ["/files/**"]
authenticators = ["anonymous"]
authorizer = "allow"
allow_encoded_slash = true

[[rules]]
id = "matrix"
paths = ["/matrix/**"]
authenticators = ["anonymous"]
authorizer = "allow"
allow_semicolon = true

[[rules]]
id = "public"
paths = ["/public/**"]
authenticators = ["anonymous"]
authorizer = "allow"
"""
SOURCES = ("X-Forwarded-Uri", "X-Original-URI", "path")
NAME = "kratos_hooks_decisions_total"


@pytest.fixture
async def d(rules_file: Path, start_decisions: DecisionsFactory) -> Decisions:
    rules_file.write_text(RULES + EXTRA)
    return await start_decisions()


async def ask(d: Decisions, source: str, uri: str, **headers: str) -> tuple[int, bytes]:
    """The decision on ``uri`` given by ``source``, the request written byte for byte (a
    client library would resolve dot segments or drop the fragment)."""
    port = d.service.running.internal_port
    target = "/decisions"
    if source == "path":
        target += uri
    else:
        headers[source] = uri
    lines = [f"GET {target} HTTP/1.1", "Host: app.example.com", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in {**API, **headers}.items()]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("uri", "form"),
    [
        ("/public/..%2Fapp/x", "an encoded slash (%2F)"),
        ("/public/%2e%2e%2fapp/x", "an encoded slash (%2F)"),
        ("/app/x#/../../public/y", "a fragment (#)"),
        ("/public/..;/app/x", "a semicolon (path parameter)"),
        ("/public/..%3B/app/x", "an encoded semicolon (%3B)"),
        ("/public/..%5Capp/x", "an encoded backslash (%5C)"),
        ("/public/..\\app/x", "a backslash"),
        ("/public/%252e%252e/app/x", "an encoded percent sign (%25)"),
        ("/public/a%00", "an encoded NUL (%00)"),
        ("/public/a%3Fb", "an encoded question mark (%3F)"),
        ("/public/a%23b", "an encoded hash (%23)"),
        ("/public/a%zz", "a malformed escape"),
    ],
)
async def test_ambiguous_paths_are_refused_with_400(
    d: Decisions, source: str, uri: str, form: str
) -> None:
    status, body = await ask(d, source, uri)
    assert status == 400, body
    assert b'"code":400' in body
    assert b'"id":"bad_request"' in body
    assert form.encode() in body


@pytest.mark.parametrize("source", SOURCES)
async def test_a_rule_allowing_a_form_matches_it_as_one_segment(d: Decisions, source: str) -> None:
    assert (await ask(d, source, "/files/a%2Fb"))[0] == 200
    assert (await ask(d, source, "/files/a%2fb/c?x=%2F"))[0] == 200
    assert (await ask(d, source, "/matrix/a;v=1"))[0] == 200
    # An allowance is for one form: a semicolon rule still refuses an encoded slash …
    assert (await ask(d, source, "/matrix/a%2Fb"))[0] == 400
    # … and the encoded slash never becomes a separator to climb out of the rule with.
    assert (await ask(d, source, "/files/..%2F..%2Fadmin"))[0] == 200  # still /files/**
    assert (await ask(d, source, "/files/..%2F../x"))[0] == 200  # /files/x
    # Judged /admin, whose rule does not allow the %2F it still carries.
    assert (await ask(d, source, "/files/..%2F/../../admin"))[0] == 400


@pytest.mark.parametrize("source", SOURCES)
async def test_ordinary_and_merged_spellings_decide_as_before(d: Decisions, source: str) -> None:
    assert (await ask(d, source, "/public/x"))[0] == 200
    assert (await ask(d, source, "/%70ublic/%2E%2e/public/./x//y"))[0] == 200
    assert (await ask(d, source, "/public/../app/x"))[0] == 401  # dot segments resolved
    assert (await ask(d, source, "/public/%2e%2e/app/x"))[0] == 401


async def test_browsers_get_the_400_too_and_nginx_style_a_403(
    rules_file: Path, start_decisions: DecisionsFactory, d: Decisions
) -> None:
    status, _ = await ask(d, "X-Forwarded-Uri", "/public/..%2Fapp/x", **BROWSER)
    assert status == 400  # signing in would not make the path judgeable: no login redirect
    rules_file.write_text(RULES + EXTRA)
    nginx = await start_decisions(DECISIONS_ERROR_STYLE="nginx")
    status, body = await ask(nginx, "X-Original-URI", "/public/..%2Fapp/x", **BROWSER)
    assert (status, body) == (403, b"")  # nginx passes only 401 and 403, and drops bodies


async def test_refusals_are_counted(d: Decisions, http: aiohttp.ClientSession) -> None:
    async def refused() -> float:
        labels = {"rule": "public", "result": "bad_path"}
        return await metric_total(http, d.service.internal_url, NAME, **labels)

    before = await refused()  # the counters are the process's: other tests count too
    await ask(d, "X-Forwarded-Uri", "/public/..%2Fapp/x")
    assert await refused() == before + 1
