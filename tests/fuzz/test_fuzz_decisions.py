"""Fuzzing what the decisions read from the auth call: the forwarded / original-request
headers (``handlers.decisions.request.read_original``) and the raw path after
``/decisions``, alone and through the real internal listener.

Properties: reading never raises; the original URI is a path, the host carries nothing that
could end an authority, the method is upper case. Through the endpoint, whatever a proxy may
forward (any field value, duplicated headers, any request target a proxy can send), the
answer is one the README documents — 200, a redirect with an absolute ``Location``, or a
denial in the caller's format (Kratos' error JSON, the step-up document, nginx's bare
401/403/503) — never a 500, with no ERROR line logged and the 500 counter unmoved.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from handlers.decisions.request import ProxyTrust, read_original
from tests.conftest import Kratos, ServiceFactory
from tests.fuzz.support import (
    SHARED_RANDOM,
    errors_logged,
    fuzz_async,
    internal_errors,
    is_kratos_error,
    profile,
)
from tests.support.process import free_port
from tests.support.rawhttp import raw_request

pytestmark = [pytest.mark.integration, SHARED_RANDOM]

RULES = """
[[rules]]
id = "open"
paths = ["/open/**"]
authenticators = ["anonymous"]
authorizer = "allow"

[[rules]]
id = "nginx"
paths = ["/ngx/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = "allow"
error_style = "nginx"

[[rules]]
id = "limited"
paths = ["/limited/**"]
authenticators = ["session_token", "anonymous"]
authorizer = "allow"
rate_limit = { per_ip = 3, per_subject = 3, window_s = 60 }

[[rules]]
id = "mfa"
paths = ["/secure/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = { type = "aal", aal = "aal2" }

[[rules]]
id = "roles"
hosts = ["*.example.com"]
path_regex = "/admin(/.*)?"
methods = ["GET", "POST"]
authenticators = ["session_cookie", "session_token"]
authorizer = { type = "roles", roles = ["admin"] }
headers = { "X-Tenant" = "{{ identity.metadata_public.tenant }}" }

[[rules]]
id = "remote"
paths = ["/remote/**"]
registry_actions = ["pull"]
authenticators = ["session_token"]
authorizer = { type = "remote", webhook = "gone" }

[[rules]]
id = "semi"
paths = ["/semi/**"]
authenticators = ["anonymous"]
authorizer = "allow"
allow_semicolon = true
allow_encoded_slash = true

[webhooks.gone]
url = "http://127.0.0.1:PORT/authorize"
timeout_ms = 200
"""

# Field values a proxy can forward: visible ASCII, obs-text, inner spaces and tabs.
FIELD_CHARS = [chr(c) for c in range(0x21, 0x7F)] + [chr(c) for c in range(0x80, 0x100)]
field_text = st.text(st.sampled_from([*FIELD_CHARS, " ", "\t"]), max_size=40).map(str.strip)
# Request-target characters (RFC 3986) plus the escapes and forms the rules refuse.
target_piece = st.sampled_from(
    [*"abcXYZ019-._~!$&'()*+,;=:@/?", "%2F", "%2f", "%5C", "%00", "%3B", "%25", "%3F", "%23",
     "%2e", "%2E%2E", "%C3%A9", "%zz", "%", "..", ".", "//", "open", "ngx", "limited", "secure",
     "admin", "remote", "semi", "\\", "#"]
)  # fmt: skip
targets = st.lists(target_piece, max_size=10).map("".join)
rule_uris = st.tuples(
    st.sampled_from(["/open/", "/ngx/", "/limited/", "/secure/", "/admin", "/remote/", "/semi/"]),
    targets,
).map("".join)
uris = st.one_of(
    rule_uris,
    rule_uris,
    rule_uris,
    targets.map(lambda t: "/" + t),
    targets,
    st.sampled_from(["https://app.example.com/open/x", "http://h", "*", "//x/../admin"]),
    field_text,
)
PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "X-Forwarded-Method": st.sampled_from(["GET", "post", "HEAD", "DELETE", "", "G E T"]),
    "X-Forwarded-Proto": st.sampled_from(["https", "http", "HTTPS, http", "ws", "", ","]),
    "X-Forwarded-Host": st.sampled_from(
        ["app.example.com", "a.example.com:8443", "[::1]:80", "x/@evil", "a,b", "", "é.example"]
    ),
    "X-Forwarded-Uri": uris,
    "X-Original-URI": uris,
    "X-Original-Method": st.sampled_from(["GET", "PUT", "x"]),
    "X-Forwarded-For": st.sampled_from(
        ["203.0.113.7", "1.2.3.4, 10.0.0.1", "::1", "garbage", "", "999.1.1.1", "fe80::1%eth0"]
    ),
    "Host": st.sampled_from(["app.example.com", "x:1:2", "[::1", ""]),
    "Accept": st.sampled_from(
        ["text/html", "application/json", "text/html;q=0.5, application/json", "*/*", ";q=x", ""]
    ),
    "X-Requested-With": st.sampled_from(["XMLHttpRequest", ""]),
    "X-Registry-Action": st.sampled_from(["pull", "push"]),
    "X-Registry-Namespace": st.sampled_from(["team-a/x", ""]),
    "X-Request-ID": st.sampled_from(["abc", "x" * 200, "a b"]),
    "Cookie": st.sampled_from(["ory_kratos_session=COOKIE", "ory_kratos_session=", "a=b; c"]),
    "X-Session-Token": st.sampled_from(["TOKEN", "AAL2", "ory_st_nope", ""]),
    "Authorization": st.sampled_from(["Bearer TOKEN", "Bearer ory_st_x", "Basic Og==", "Bearer"]),
}
pairs = st.lists(
    st.sampled_from(sorted(PLAUSIBLE)).flatmap(
        lambda name: st.tuples(st.just(name), st.one_of(PLAUSIBLE[name], field_text))
    ),
    max_size=8,
)
# Mostly a request a proxy would describe (the URI of a rule's path, a credential or none,
# a browser or an API client), then anything else in any order.
described = st.tuples(
    st.tuples(st.just("X-Forwarded-Uri"), rule_uris),
    st.tuples(st.just("X-Forwarded-Host"), st.sampled_from(["app.example.com", "x.example.org"])),
    st.sampled_from(
        [("X-Session-Token", "TOKEN"), ("Cookie", "ory_kratos_session=COOKIE"),
         ("X-Session-Token", "AAL2"), ("X-Session-Token", "ory_st_unknown"), ("X-A", "b")]
    ),
    st.sampled_from([("Accept", "text/html"), ("Accept", "application/json"), ("X-B", "c")]),
)  # fmt: skip
headers = st.one_of(
    st.tuples(described, pairs).map(lambda t: [*t[0], *t[1]]),
    st.tuples(described, pairs).map(lambda t: [*t[0], *t[1]]),
    pairs,
)
methods = st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"])
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_HOST_SAFE = re.compile(r"[A-Za-z0-9.\-:\[\]_]+")


@profile(500)
@given(headers, st.one_of(st.none(), targets), targets, methods)
def test_reading_the_original_request_never_fails(
    pairs: list[tuple[str, str]], tail: str | None, query: str, method: str
) -> None:
    proxy = CIMultiDictProxy(CIMultiDict(pairs))
    for trust in (ProxyTrust([LOOPBACK]), ProxyTrust([])):
        original = read_original(
            proxy, method=method, scheme="http", peer="127.0.0.1", tail=tail, query=query,
            trust=trust,
        )  # fmt: skip
        assert original.uri.startswith("/"), original.uri
        assert original.path.startswith("/"), original.path
        assert _HOST_SAFE.fullmatch(original.host), original.host
        assert original.method == original.method.upper()
        assert original.scheme in {"http", "https"}
        assert original.url.startswith(("http://", "https://"))
        _ = (original.hostname, original.client_ip, dict(original.registry))


def _expected(status: int, body: bytes, head: dict[str, str], method: str) -> str | None:
    """What is wrong with this answer, or None when it is one the README documents."""
    if status == 200:
        return None
    if status in (302, 303):
        location = head.get("location", "")
        return None if location.startswith(("http://", "https://")) else f"Location {location!r}"
    if method == "HEAD" or not body:
        # nginx style (bare 401 / 403 / 503) or a HEAD: nothing to read.
        return None if status in (401, 403, 503) or method == "HEAD" else f"empty {status}"
    if status == 403 and orjson.loads(body).get("error") == "aal2_required":
        return None
    if status in (400, 401, 403, 404, 429, 503) and is_kratos_error(body, status):
        return None
    return f"{status} {body[:200]!r}"


async def test_the_decisions_endpoint_answers_any_forwarded_request_as_documented(
    kratos: Kratos,
    start_service: ServiceFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.replace("PORT", str(free_port())), encoding="utf-8")
    svc = await start_service(
        KRATOS_PUBLIC_URL=kratos.public_url,
        KRATOS_ADMIN_URL=kratos.admin_url,
        TRUSTED_PROXIES="127.0.0.1/32",
        DECISIONS_RULES_FILE=str(rules),
        DECISIONS_LOGIN_URL="/self-service/login/browser",
    )
    user = kratos.state.add_identity("fuzz@example.com", "pw", metadata_public={"roles": ["admin"]})
    token, cookie = kratos.state.create_session(user["id"])
    aal2, _ = kratos.state.create_session(user["id"], aal="aal2")
    port = svc.running.internal_port
    async with aiohttp.ClientSession() as http:
        before = await internal_errors(http, svc.internal_url)
    seen: Counter[int] = Counter()

    async def check(case: tuple[str, str, list[tuple[str, str]]]) -> None:
        method, tail, pairs = case
        lines = [f"{method} /decisions{tail} HTTP/1.1", "Connection: close"]
        hosts = [value for name, value in pairs if name == "Host"]
        # One Host, as every proxy sends (two are refused by aiohttp's HTTP parser itself).
        lines.append(f"Host: {hosts[0] if hosts else 'auth.internal'}")
        for name, value in pairs:
            if name == "Host":
                continue
            value = value.replace("TOKEN", token).replace("COOKIE", cookie).replace("AAL2", aal2)
            lines.append(f"{name}: {value}")
        answer = await raw_request(port, "\r\n".join(lines))
        head = {k.lower(): v for k, v in answer.headers}
        body = answer.body if "content-length" in head else b""
        seen[answer.status] += 1
        problem = _expected(answer.status, body, head, method)
        assert problem is None, f"{problem} for {lines}"

    tails = st.one_of(st.just(""), targets.map(lambda t: "/" + t.replace("#", "%23")))
    ran = await fuzz_async(st.tuples(methods, tails, headers), check, default=300)
    async with aiohttp.ClientSession() as http:
        assert await internal_errors(http, svc.internal_url) == before
    assert errors_logged(caplog.records) == []
    assert ran > 0
    # The examples reached the rules and their answers, not only the no-match 404.
    assert {200, 302, 400, 401, 403, 404} <= set(seen), seen
