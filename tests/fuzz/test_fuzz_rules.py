"""Fuzzing the access-rules parser (``handlers.decisions.rules_loader.parse_rules``).

Properties, for any text and for generated documents close enough to real ones to reach
every field's check:

- the answer is a ``RuleSet`` or a ``RulesError`` — never another exception (at start-up one
  would print a traceback instead of the one line the README promises; at a hot reload it
  would end the rules watcher for good);
- a ``RulesError`` is one line naming the file, and, for a rule's field, the rule and the
  field (``rule #2 ('app'): field 'paths': expected …``);
- what the parser admits can be used: every rate-limit window and webhook timeout / cache TTL
  is a finite number (a window of ``inf`` passed validation and made every decision of that
  rule a 500).
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from handlers.decisions.paths import ALLOWANCES
from handlers.decisions.rule_limits import window_of
from handlers.decisions.rules import AUTHENTICATORS, AUTHORIZERS
from handlers.decisions.rules_loader import RULE_KEYS, WEBHOOK_KEYS, RulesError, parse_rules
from tests.fuzz import toml_text
from tests.fuzz.support import profile

SOURCE = "fuzz.toml"
ENV = {"CORP_TOKEN": "s3cret", "CORP_PASSWORD": "pw"}
RULE_FIELD = re.compile(r"^rules file fuzz\.toml: rule #\d+( \(.*\))?: field '[^']*': expected .+$")
WEBHOOK_FIELD = re.compile(r"^rules file fuzz\.toml: webhook '.*': field '[^']*': expected .+$")

anything = toml_text.values
path_text = st.text(st.sampled_from("/ab*?.%2F5Cé;\\#~-_"), max_size=12)
host_text = st.text(st.sampled_from("ab.*-:[]1"), min_size=1, max_size=10)
regex_text = st.text(st.sampled_from("a.*+?()[]{}|^$\\0123456789,:<>=!P-"), max_size=14)
numbers = st.one_of(
    st.integers(min_value=-5, max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, one time in eight any TOML value at all (Hypothesis draws
    the ends of a range most often, so the odd one out sits in the middle)."""
    return st.integers(0, 7).flatmap(lambda i: anything if i == 4 else strategy)


authorizers = st.one_of(
    st.sampled_from(AUTHORIZERS),
    st.fixed_dictionaries(
        {"type": st.sampled_from(AUTHORIZERS)},
        optional={
            "roles": maybe(st.lists(st.sampled_from(["admin", "", "x"]), max_size=3)),
            "require": maybe(st.sampled_from(["any", "all", "some"])),
            "aal": maybe(st.sampled_from(["aal1", "aal2", "aal3"])),
            "webhook": maybe(st.sampled_from(["corp", "nope"])),
            "extra": anything,
        },
    ),
)
rule_fields: dict[str, st.SearchStrategy[Any]] = {
    "hosts": maybe(st.lists(host_text, max_size=3)),
    "paths": maybe(st.lists(path_text, max_size=3)),
    "path_regex": maybe(regex_text),
    "methods": maybe(st.lists(st.sampled_from(["GET", "post", ""]), max_size=3)),
    "registry_actions": maybe(st.lists(st.sampled_from(["pull", "push"]), max_size=2)),
    "registry_namespaces": maybe(st.lists(path_text, max_size=2)),
    "identity_headers": maybe(st.booleans()),
    "headers": maybe(
        st.dictionaries(
            st.sampled_from(["X-Tenant", "Bad Name", "X-A", ""]),
            st.sampled_from(["{{ identity.id }}", "{{ }}", "{{ a..b }}", "plain", "{{"]),
            max_size=2,
        )
    ),
    "error_style": maybe(st.sampled_from(["auto", "nginx", "apache"])),
    "rate_limit": maybe(
        st.fixed_dictionaries(
            {},
            optional={"per_ip": numbers, "per_subject": numbers, "window_s": numbers},
        )
    ),
    **{name: maybe(st.booleans()) for name in ALLOWANCES},
}
assert set(rule_fields) <= RULE_KEYS
rules = st.fixed_dictionaries(
    {
        "id": maybe(st.sampled_from(["app", "api", "web"])),
        "authenticators": maybe(st.lists(st.sampled_from(AUTHENTICATORS), min_size=1, max_size=3)),
        "authorizer": maybe(authorizers),
    },
    optional=rule_fields,
)
webhooks = st.fixed_dictionaries(
    {"url": maybe(st.just("https://authz.example/allow"))},
    optional={
        "timeout_ms": maybe(numbers),
        "cache_ttl_s": maybe(numbers),
        "bearer_token": maybe(st.just("token")),
        "bearer_token_env": maybe(st.sampled_from(["CORP_TOKEN", "UNSET_NAME", "1BAD", ""])),
        "basic_auth": maybe(
            st.fixed_dictionaries(
                {"username": maybe(st.sampled_from(["u", "a:b"]))},
                optional={
                    "password": maybe(st.just("pw")),
                    "password_env": maybe(st.sampled_from(["CORP_PASSWORD", "UNSET", "$X"])),
                },
            )
        ),
        "client_certificate": maybe(st.sampled_from(["/nonexistent/client.pem", ""])),
        "client_private_key": maybe(st.just("/nonexistent/key.pem")),
        "server_ca_bundle": maybe(st.sampled_from(["/nonexistent/ca.pem", ""])),
        "forward_headers": maybe(st.lists(st.sampled_from(["X-Custom", ""]), max_size=2)),
    },
)
assert {"url"} | {"timeout_ms", "cache_ttl_s"} <= WEBHOOK_KEYS


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts: list[str] = []
    hooks = draw(st.dictionaries(st.sampled_from(["corp", "other"]), webhooks, max_size=2))
    for name, hook in hooks.items():
        parts.append(toml_text.table(f"[webhooks.{name}]", hook))
    for rule in draw(st.lists(rules, min_size=1, max_size=3)):
        if draw(st.integers(0, 9)) == 4:  # a typo now and then
            rule = {**rule, draw(st.sampled_from(["path", "autorizer"])): draw(anything)}
        parts.append(toml_text.table("[[rules]]", rule))
    if draw(st.integers(0, 19)) == 9:  # a top-level key of the wrong shape now and then
        parts = [f"{draw(st.sampled_from(['rules', 'webhooks', 'other']))} = 1\n"]
    return "\n".join(parts)


def check(text: str) -> None:
    try:
        ruleset = parse_rules(text, SOURCE, ENV)
    except RulesError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert message.startswith(f"rules file {SOURCE}: "), message
        if ": rule #" in message and "invalid TOML" not in message:
            assert RULE_FIELD.match(message), message
        if ": webhook '" in message:
            assert WEBHOOK_FIELD.match(message), message
        return
    for rule in ruleset.rules:
        if rule.rate_limit is not None:
            assert math.isfinite(rule.rate_limit.window), rule
            window_of(time.time(), rule.rate_limit.window)  # what every decision computes
    for hook in ruleset.webhooks.values():
        assert math.isfinite(hook.timeout) and hook.timeout > 0, hook
        assert math.isfinite(hook.cache_ttl) and hook.cache_ttl >= 0, hook
        assert isinstance(hook.bearer_token, str)


@profile(300)
@given(documents())
def test_generated_rules_files_are_accepted_or_refused_in_one_line(text: str) -> None:
    check(text)


@profile(200)
@given(st.text(max_size=200))
def test_any_text_is_a_rules_file_or_one_line_refusal(text: str) -> None:
    check(text)


def test_the_findings_of_this_fuzzer_are_refused_by_name() -> None:
    """The inputs that escaped as other exceptions (or passed and broke decisions) before."""
    base = '[[rules]]\nid = "app"\nauthenticators = ["anonymous"]\nauthorizer = "allow"\n'
    cases = {
        'path_regex = "a{4294967296}"': "field 'path_regex': expected a valid regular expression",
        "rate_limit = { window_s = inf }": "field 'rate_limit.window_s'",
        "rate_limit = { window_s = nan }": "field 'rate_limit.window_s'",
        "error_style = []": "field 'error_style'",  # was TypeError: unhashable type
    }
    authorizers = {
        'authorizer = { type = "roles", roles = ["a"], require = [] }': "'authorizer.require'",
        'authorizer = { type = "aal", aal = {} }': "field 'authorizer.aal'",
    }
    for line, expected in cases.items() | authorizers.items():
        text = base + line + "\n"
        if line.startswith("authorizer"):
            text = text.replace('authorizer = "allow"\n', "")
        try:
            parse_rules(text, SOURCE, ENV)
        except RulesError as exc:
            assert expected in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted: {line}")
    hook = '[webhooks.corp]\nurl = "https://a.example/"\n'
    hook_cases = {
        "cache_ttl_s = inf": "field 'cache_ttl_s'",
        'server_ca_bundle = "/nonexistent/ca.pem"': "field 'server_ca_bundle'",
        "client_certificate = 1": "field 'client_certificate'",
        "bearer_token = [1]": "field 'bearer_token'",
    }
    for line, expected in hook_cases.items():
        try:
            parse_rules(hook + line + "\n", SOURCE, ENV)
        except RulesError as exc:
            assert expected in str(exc), str(exc)
        else:
            raise AssertionError(f"accepted: {line}")
