"""The pure policy of decisions, case by case: rules, request reading, errors, headers."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from handlers.decisions.authenticators import session_token
from handlers.decisions.authorizers import authorize
from handlers.decisions.deny import Caller, Denial, deny, is_browser, login_redirect
from handlers.decisions.identity_headers import allow_headers, identity_headers, render, sanitize
from handlers.decisions.request import OriginalRequest, ProxyTrust, read_original
from handlers.decisions.rule_limits import window_of
from handlers.decisions.rules import Authorizer, Glob, glob_to_regex
from handlers.decisions.rules_loader import RulesError, parse_rules
from handlers.decisions.subject import Subject
from proxy.edge.logout_watch import clears_cookie, token_from_body
from proxy.kernel.cookies import cookie_value
from proxy.kernel.sessions.cache import entry_ttl
from proxy.kernel.sessions.whoami import WhoamiResult, classify
from tests.decisions.conftest import RULES

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)

GLOB_TEXTS = ["", "/", "/app", "/app/", "/app/x", "/app/x/y", "/apps", "/ap", "/APP/x", "/a?p/x"]


@pytest.mark.parametrize(
    "pattern", ["/app/**", "/app**", "/app", "/app/", "**", "/", "/app/*", "/a?p/**", "/*/x"]
)
def test_a_compiled_glob_matches_exactly_what_its_regex_matches(pattern: str) -> None:
    glob = Glob(pattern, "/")
    regex = glob_to_regex(pattern, "/")
    for text in GLOB_TEXTS:
        assert glob.fullmatch(text) == (regex.fullmatch(text) is not None), (pattern, text)


@pytest.mark.parametrize("pattern", ["app.example.com", "**.example.com", "*.example.com", "**"])
def test_host_globs_compare_lower_cased_hosts(pattern: str) -> None:
    glob, regex = Glob(pattern, "."), glob_to_regex(pattern, ".")
    for host in [
        "app.example.com",
        "a.b.example.com",
        "example.com",
        "evil.com",
        "app-example.com",
    ]:
        assert glob.fullmatch(host) == (regex.fullmatch(host) is not None), (pattern, host)


def original(
    uri: str = "/app/x?q=1",
    *,
    method: str = "GET",
    host: str = "app.example.com",
    registry: dict[str, str] | None = None,
) -> OriginalRequest:
    return OriginalRequest(method, "https", host, uri, "203.0.113.9", True, registry or {})


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


# --- rules: matching --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "host", "method", "rule"),
    [
        ("/health", "any.host", "GET", "health"),
        ("/health", "any.host", "POST", None),  # method not listed
        ("/admin", "x", "GET", "admin"),
        ("/admin/users/1", "x", "DELETE", "admin"),
        ("/administrator", "x", "GET", None),  # a glob is not a prefix
        ("/app/page?admin=1", "app.example.com", "GET", "app"),  # query never matched
        ("/app/deep/er/path", "APP.example.com:8443", "GET", "app"),  # port and case ignored
        ("/app/x", "t1.apps.example.com", "GET", "app"),
        ("/app/x", "a.b.apps.example.com", "GET", None),  # * is one label
        ("/app/x", "evil.com", "GET", None),
        ("/health/../admin", "x", "GET", "admin"),  # dot segments resolved first
        ("/secure/x", "x", "GET", "mfa"),
    ],
)
def test_first_matching_rule_in_file_order(
    uri: str, host: str, method: str, rule: str | None
) -> None:
    rules = parse_rules(RULES, "rules.toml")
    match = rules.first_match(original(uri, host=host, method=method))
    assert (match.id if match else None) == rule


def test_earlier_rule_wins_over_a_more_specific_later_one() -> None:
    text = """
[[rules]]
id = "broad"
paths = ["/**"]
authenticators = ["anonymous"]
authorizer = "deny"
[[rules]]
id = "specific"
paths = ["/public/page"]
authenticators = ["anonymous"]
authorizer = "allow"
"""
    match = parse_rules(text, "r").first_match(original("/public/page"))
    assert match is not None and match.id == "broad"


def test_registry_action_and_namespace_conditions() -> None:
    rules = parse_rules(RULES, "r")
    push = {"X-Registry-Action": "put-manifest", "X-Registry-Namespace": "team-a/app"}
    pull = {"X-Registry-Action": "get-manifest", "X-Registry-Namespace": "team-a/app"}
    other = {"X-Registry-Action": "put-manifest", "X-Registry-Namespace": "team-b/app"}
    assert rules.first_match(original("/v2/team-a/app/manifests/1", registry=push)) is not None
    assert rules.first_match(original("/v2/team-a/app/manifests/1", registry=pull)) is None
    assert rules.first_match(original("/v2/team-b/app/manifests/1", registry=other)) is None


def test_path_regex_must_match_the_whole_path() -> None:
    text = """
[[rules]]
id = "api"
path_regex = "/api/v[0-9]+/.*"
authenticators = ["anonymous"]
authorizer = "allow"
"""
    rules = parse_rules(text, "r")
    assert rules.first_match(original("/api/v2/items")) is not None
    assert rules.first_match(original("/x/api/v2/items")) is None


# --- rules: validation names the rule and the field -------------------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('authenticators = ["cookie"]\nauthorizer = "allow"', "field 'authenticators'"),
        ('authenticators = ["anonymous"]', "field 'authorizer'"),
        ('authenticators = ["anonymous"]\nauthorizer = "maybe"', "field 'authorizer'"),
        (
            'authenticators = ["anonymous"]\nauthorizer = { type = "roles", roles = [] }',
            "field 'authorizer.roles'",
        ),
        (
            'authenticators = ["anonymous"]\nauthorizer = { type = "remote", webhook = "nope" }',
            "field 'authorizer.webhook'",
        ),
        ('authenticators = ["anonymous"]\nauthorizer = "allow"\npath_regex = "("', "path_regex"),
        ('authenticators = ["anonymous"]\nauthorizer = "allow"\npath = ["/x"]', "field 'path'"),
        (
            'authenticators = ["anonymous"]\nauthorizer = "allow"\nheaders = { "X-A" = "{{ a" }',
            "field 'headers.X-A'",
        ),
        (
            'authenticators = ["anonymous"]\nauthorizer = "allow"\nrate_limit = { per_ip = -1 }',
            "field 'rate_limit.per_ip'",
        ),
    ],
)
def test_invalid_rule_names_rule_and_field(snippet: str, expected: str) -> None:
    text = '[[rules]]\nid = "ok"\nauthenticators = ["anonymous"]\nauthorizer = "allow"\n'
    text += f'[[rules]]\nid = "broken"\n{snippet}\n'
    with pytest.raises(RulesError) as caught:
        parse_rules(text, "/etc/rules.toml")
    message = str(caught.value)
    assert "/etc/rules.toml" in message
    assert "rule #2 ('broken')" in message
    assert expected in message


def test_duplicate_ids_and_bad_toml_are_rejected() -> None:
    twice = '[[rules]]\nid = "a"\nauthenticators = ["anonymous"]\nauthorizer = "allow"\n' * 2
    with pytest.raises(RulesError, match="unique"):
        parse_rules(twice, "r")
    with pytest.raises(RulesError, match="invalid TOML"):
        parse_rules("[[rules]\n", "r")


def test_webhook_secret_from_the_environment() -> None:
    text = '[webhooks.corp]\nurl = "https://authz/allow"\nbearer_token_env = "CORP_TOKEN"\n'
    hooks = parse_rules(text, "r", env={"CORP_TOKEN": "s3cret"}).webhooks
    assert hooks["corp"].bearer_token == "s3cret"
    assert "s3cret" not in repr(hooks["corp"])
    with pytest.raises(RulesError, match="webhook 'corp': field 'bearer_token_env'"):
        parse_rules(text, "r", env={})


# --- reading the original request ---------------------------------------------------------


def test_forwarded_headers_from_a_trusted_proxy() -> None:
    incoming = headers(
        X_Forwarded_Method="post",
        X_Forwarded_Proto="https, http",
        X_Forwarded_Host="app.example.com",
        X_Forwarded_Uri="/app/x?q=1",
        X_Forwarded_For="198.51.100.7",
        X_Registry_Action="get-blob",
        Host="kratos-hooks:8081",
    )
    seen = read_original(
        incoming,
        method="GET",
        scheme="http",
        peer="127.0.0.1",
        tail=None,
        query="q=1",
        trust=ProxyTrust(LOOPBACK),
    )
    assert (seen.method, seen.url, seen.path) == (
        "POST",
        "https://app.example.com/app/x?q=1",
        "/app/x",
    )
    assert seen.client_ip == "198.51.100.7"
    assert seen.registry == {"X-Registry-Action": "get-blob"}


def test_forwarded_headers_from_anyone_else_are_ignored() -> None:
    incoming = headers(X_Forwarded_Uri="/health", X_Forwarded_Host="app", Host="kh:8081")
    seen = read_original(
        incoming,
        method="GET",
        scheme="http",
        peer="192.0.2.1",
        tail=None,
        query="",
        trust=ProxyTrust(LOOPBACK),
    )
    assert (seen.path, seen.host, seen.client_ip, seen.trusted) == (
        "/",
        "kh:8081",
        "192.0.2.1",
        False,
    )


def test_a_host_cannot_smuggle_another_authority_into_redirects() -> None:
    incoming = headers(X_Forwarded_Host="evil.example/x?@app", X_Forwarded_Uri="/app")
    seen = read_original(
        incoming, method="GET", scheme="http", peer="127.0.0.1", tail=None, query="",
        trust=ProxyTrust(LOOPBACK),
    )  # fmt: skip
    assert seen.url == "http://evil.examplexapp/app"


def test_nginx_original_uri_and_path_style() -> None:
    nginx = headers(X_Original_URI="/app/a%20b?x=1", X_Original_Method="PUT", Host="app")
    seen = read_original(
        nginx,
        method="GET",
        scheme="http",
        peer="127.0.0.1",
        tail=None,
        query="",
        trust=ProxyTrust(LOOPBACK),
    )
    assert (seen.method, seen.uri) == ("PUT", "/app/a%20b?x=1")
    oathkeeper = read_original(
        headers(Host="app.example.com"),
        method="DELETE",
        scheme="http",
        peer="192.0.2.1",
        tail="/app/items/1",
        query="force=1",
        trust=ProxyTrust(LOOPBACK),
    )
    assert (oathkeeper.method, oathkeeper.url) == (
        "DELETE",
        "http://app.example.com/app/items/1?force=1",
    )


# --- errors by caller ---------------------------------------------------------------------

LOGIN = "https://auth.example.com/login"


def caller(
    browser: bool, *, method: str = "GET", style: str = "auto", login: str = LOGIN
) -> Caller:
    return Caller(original(method=method), browser, style, login, "req-1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("accept", "xrw", "browser"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None, True),
        ("text/html", "XMLHttpRequest", False),
        ("application/json", None, False),
        ("application/json, text/html;q=0.5", None, False),
        ("*/*", None, False),
        (None, None, False),
    ],
)
def test_browser_detection(accept: str | None, xrw: str | None, browser: bool) -> None:
    assert is_browser(accept, xrw) is browser


def _location_query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def test_browser_get_is_sent_to_login_with_an_absolute_return_to() -> None:
    answer = deny(Denial("unauthenticated", "x"), caller(True))
    location = dict(answer.headers)["Location"]
    assert answer.status == 302 and location.startswith(LOGIN + "?")
    assert _location_query(location)["return_to"] == ["https://app.example.com/app/x?q=1"]


def test_browser_post_gets_303_and_relative_login_becomes_absolute() -> None:
    answer = deny(Denial("unauthenticated", "x"), caller(True, method="POST", login="/login"))
    assert answer.status == 303
    assert dict(answer.headers)["Location"].startswith("https://app.example.com/login?return_to=")


def test_api_gets_401_json_with_www_authenticate() -> None:
    answer = deny(Denial("unauthenticated", "no session"), caller(False))
    assert answer.status == 401
    assert dict(answer.headers)["WWW-Authenticate"].startswith("Bearer realm=")
    assert answer.body is not None and answer.body["error"]["reason"] == "no session"


def test_step_up_for_browser_and_api() -> None:
    browser = deny(Denial("step_up", "x"), caller(True))
    assert browser.status == 302
    assert _location_query(dict(browser.headers)["Location"])["aal"] == ["aal2"]
    api = deny(Denial("step_up", "x"), caller(False))
    assert api.status == 403 and api.body is not None
    assert api.body["error"] == "aal2_required" and api.body["required_aal"] == "aal2"
    redirect = urlsplit(api.body["redirect_browser_to"])
    assert _location_query(api.body["redirect_browser_to"])["aal"] == ["aal2"]
    assert redirect.scheme == "https" and redirect.netloc  # absolute, like the browser's


@pytest.mark.parametrize(
    ("denial", "status"),
    [
        (Denial("forbidden", "x"), 403),
        (Denial("not_found", "x", status=404), 404),
        (Denial("rate_limited", "x", retry_after=7), 429),
        (Denial("unavailable", "x"), 503),
    ],
)
def test_other_denials_for_api(denial: Denial, status: int) -> None:
    answer = deny(denial, caller(False))
    assert answer.status == status
    if status == 429:
        assert dict(answer.headers)["Retry-After"] == "7"


@pytest.mark.parametrize(
    ("denial", "browser", "status", "login"),
    [
        (Denial("unauthenticated", "x"), True, 401, True),
        (Denial("unauthenticated", "x"), False, 401, False),
        (Denial("step_up", "x"), True, 403, True),
        (Denial("forbidden", "x"), True, 403, False),
        (Denial("not_found", "x", status=404), True, 403, False),
        (Denial("rate_limited", "x", retry_after=3), False, 403, False),
    ],
)
def test_nginx_style_only_401_and_403(
    denial: Denial, browser: bool, status: int, login: bool
) -> None:
    answer = deny(denial, caller(browser, style="nginx"))
    assert answer.status == status and answer.body is None
    assert ("X-Login" in dict(answer.headers)) is login


def test_login_redirect_keeps_existing_query() -> None:
    url = login_redirect("https://auth/login?flow=x", original(), aal="aal2")
    assert url.startswith("https://auth/login?flow=x&aal=aal2&return_to=")


# --- subjects, authorizers, headers ------------------------------------------------------


def session(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "sess-1",
        "active": True,
        "authenticator_assurance_level": "aal1",
        "authenticated_at": "2026-01-01T00:00:00Z",
        "expires_at": "2099-01-01T00:00:00Z",
        "identity": {
            "id": "user-1",
            "traits": {"email": "a@example.com"},
            "verifiable_addresses": [{"verified": True}],
            "metadata_public": {"roles": ["editor", "admin"], "org": {"name": "Acme"}},
        },
    }
    base.update(overrides)
    return base


def test_authorizers() -> None:
    user = Subject(session())
    assert authorize(Authorizer("allow"), Subject()) is None
    denied = authorize(Authorizer("deny"), user)
    assert denied is not None and denied.kind == "forbidden"
    assert authorize(Authorizer("roles", roles=frozenset({"admin", "x"})), user) is None
    all_of = Authorizer("roles", roles=frozenset({"admin", "x"}), require_all=True)
    assert authorize(all_of, user) == Denial("forbidden", "The session lacks a required role.")
    anonymous = authorize(Authorizer("roles", roles=frozenset({"admin"})), Subject())
    assert anonymous is not None and anonymous.kind == "unauthenticated"
    step_up = authorize(Authorizer("aal"), user)
    assert step_up is not None and step_up.kind == "step_up"
    aal2 = Subject(session(authenticator_assurance_level="aal2"))
    assert authorize(Authorizer("aal"), aal2) is None


def test_identity_headers_and_templates() -> None:
    user = Subject(session())
    assert identity_headers(user) == {
        "X-User-ID": "user-1",
        "X-User-Email": "a@example.com",
        "X-User-Roles": "editor,admin",
        "X-User-Verified": "true",
        "X-Session-ID": "sess-1",
        "X-Auth-Time": "2026-01-01T00:00:00Z",
    }
    assert identity_headers(Subject()) == {}
    extras = (("X-Org", "org={{ identity.metadata_public.org.name }}"), ("X-None", "{{ nope }}"))
    assert allow_headers(user, extras, with_identity=False) == {
        "X-Org": "org=Acme",
        "X-None": "",
        "Cache-Control": "no-store",
    }
    allowed = allow_headers(user, (), with_identity=True)
    assert allowed == {**identity_headers(user), "Cache-Control": "no-store"}
    assert allow_headers(Subject(), (), with_identity=True) == {"Cache-Control": "no-store"}
    assert render("{{ identity.metadata_public.roles }}", user.session) == "editor,admin"


def test_control_characters_never_reach_a_header() -> None:
    evil = session()
    evil["identity"]["traits"]["email"] = "a@example.com\r\nX-User-ID: admin"
    assert identity_headers(Subject(evil))["X-User-Email"] == "a@example.comX-User-ID: admin"
    assert sanitize("a\x00b\x1bc\x7fd\tz") == "abcdz"


# --- Kratos' answers, cache lifetimes, credentials ----------------------------------------


def test_whoami_classification() -> None:
    assert classify(200, b'{"id":"s","active":true}').verdict == "valid"
    assert classify(200, b'{"id":"s","active":false}').verdict == "invalid"
    assert classify(401, b"{}").verdict == "invalid"
    aal2 = b'{"error":{"id":"session_aal2_required","code":403}}'
    assert classify(403, aal2).verdict == "aal2_required"
    assert classify(403, b'{"error":{"id":"other"}}').verdict == "invalid"
    assert classify(500, b"").verdict == "error"
    assert classify(200, b"<html>").verdict == "error"


def test_cache_lifetime_never_outlives_the_session() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    soon = (now + timedelta(seconds=10)).isoformat()
    valid = WhoamiResult("valid", session(expires_at=soon))
    assert entry_ttl(valid, now.timestamp(), 60, 5) == pytest.approx(10)
    assert entry_ttl(WhoamiResult("valid", session()), now.timestamp(), 60, 5) == 60
    assert entry_ttl(WhoamiResult("invalid"), now.timestamp(), 60, 5) == 5
    assert entry_ttl(WhoamiResult("aal2_required"), now.timestamp(), 60, 5) == 0
    assert entry_ttl(WhoamiResult("error"), now.timestamp(), 60, 5) == 0


def test_credentials_are_found_where_kratos_looks() -> None:
    assert cookie_value(["a=1; ory_kratos_session=abc; b=2"], "ory_kratos_session") == "abc"
    assert cookie_value(["ory_kratos_session="], "ory_kratos_session") is None
    assert session_token({"X-Session-Token": "tok"}) == "tok"
    assert session_token({"Authorization": "Bearer ory_st_abc"}) == "ory_st_abc"
    assert session_token({"Authorization": "Bearer pat_abc"}) is None  # another kind
    assert session_token({"Authorization": "Basic ory_st_abc"}) is None


def test_logout_recognition() -> None:
    assert token_from_body(b'{"session_token":"ory_st_x"}') == "ory_st_x"
    assert token_from_body(b"nope") is None
    cleared = "ory_kratos_session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0"
    assert clears_cookie([cleared], "ory_kratos_session")
    assert not clears_cookie(["ory_kratos_session=abc; Path=/"], "ory_kratos_session")
    assert not clears_cookie(["csrf_token=; Max-Age=0"], "ory_kratos_session")


def test_rate_limit_windows() -> None:
    assert window_of(125.0, 60) == (2, 55)
    assert window_of(179.9, 60) == (2, 1)


def test_proxy_trust_answers_stay_right_past_its_memo_bound() -> None:
    trust = ProxyTrust(LOOPBACK, limit=2)
    peers = ["127.0.0.1", "198.51.100.1", "127.0.0.2", "::1", "127.0.0.1"]
    assert [trust.trusts(p) for p in peers] == [True, False, True, False, True]
    # A trusted proxy's X-Forwarded-For names the client; anyone else's is ignored.
    assert trust.client_ip("127.0.0.1", ("203.0.113.5",)) == "203.0.113.5"
    assert trust.client_ip("198.51.100.1", ("203.0.113.5",)) == "198.51.100.1"
    assert trust.client_ip("127.0.0.1", ("203.0.113.6",)) == "203.0.113.6"
