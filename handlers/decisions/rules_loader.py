"""Reading and validating the rules file; every error names the rule and the field.

```toml
[[rules]]
id = "app"                                   # unique
hosts = ["app.example.com", "*.example.org"] # optional host globs
paths = ["/app/**"]                          # optional path globs ...
path_regex = "/api/v[0-9]+/.*"               # ... or one regex (whole path)
methods = ["GET", "POST"]                    # optional
registry_actions = ["put-manifest"]          # optional (X-Registry-Action)
registry_namespaces = ["team-a/**"]          # optional globs (X-Registry-Namespace)
authenticators = ["session_cookie", "session_token", "token"]   # tried in order
token_kinds = ["pat", "key"]  # optional: the kinds of token "token" accepts (default all)
authorizer = "allow"          # or { type = "roles", roles = ["admin"], require = "any" }
                              #    { type = "aal", aal = "aal2" }
                              #    { type = "scopes", scopes = ["read:users"], require = "all" }
                              #    { type = "remote", webhook = "corp" } | "deny"
identity_headers = true
headers = { "X-Tenant" = "{{ identity.metadata_public.tenant }}" }
error_style = "nginx"         # optional, else DECISIONS_ERROR_STYLE
rate_limit = { per_ip = 100, per_subject = 1000, window_s = 60 }
allow_encoded_slash = true    # optional: paths with %2F may match (one allow_… per form,
                              # handlers.decisions.paths.ALLOWANCES); refused otherwise

[webhooks.corp]
url = "https://authz.internal/allow"
timeout_ms = 1000
bearer_token_env = "CORP_AUTHZ_TOKEN"       # or bearer_token = "…", basic_auth = {…}
client_certificate = "/etc/…/client.pem"    # mTLS, with client_private_key
server_ca_bundle = "/etc/…/ca.pem"
forward_headers = ["X-Custom-Header"]
cache_ttl_s = 60
```

Parsing is synchronous (it reads certificate files too): callers run it in an executor.
"""

from __future__ import annotations

import math
import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from config.errors import ConfigError
from handlers.decisions.identity_headers import template_error
from handlers.decisions.paths import ALLOWANCES, FRAGMENT, MALFORMED, canonical_glob, describe
from handlers.decisions.rules import (
    AUTHENTICATORS,
    AUTHORIZERS,
    AuthenticatorName,
    Authorizer,
    AuthorizerKind,
    ErrorStyle,
    Glob,
    Match,
    Matcher,
    RateLimit,
    Rule,
    RuleSet,
    Webhook,
)
from proxy.kernel.tokens import TOKEN_KINDS, TokenKind, valid_scope

RULE_KEYS = frozenset(
    {
        "id",
        "hosts",
        "paths",
        "path_regex",
        "methods",
        "registry_actions",
        "registry_namespaces",
        "authenticators",
        "authorizer",
        "identity_headers",
        "headers",
        "error_style",
        "rate_limit",
        "token_kinds",
        *ALLOWANCES,
    }
)
WEBHOOK_KEYS = frozenset(
    {
        "url",
        "timeout_ms",
        "bearer_token",
        "bearer_token_env",
        "basic_auth",
        "client_certificate",
        "client_private_key",
        "server_ca_bundle",
        "forward_headers",
        "cache_ttl_s",
    }
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")


class RulesError(ConfigError):
    """An unusable rules file; ``str()`` is one line naming the file, rule and field."""


class _Field(ValueError):
    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"field '{field}': expected {expected}")


def _strings(raw: Any, field: str, *, non_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(i, str) and i for i in raw):
        raise _Field(field, "a list of non-empty strings")
    if non_empty and not raw:
        raise _Field(field, "a non-empty list of strings")
    return tuple(raw)


def _allowed_forms(doc: Mapping[str, Any]) -> int:
    allowed = 0
    for key, form in ALLOWANCES.items():
        value = doc.get(key, False)
        if not isinstance(value, bool):
            raise _Field(key, "true or false")
        allowed |= form if value else 0
    return allowed


def _path_glob(pattern: str, allowed: int) -> Glob:
    """``pattern`` compiled in the canonical spelling requests are matched in; a pattern no
    canonical path could match, or only one this rule refuses, is an error, not a dead rule."""
    spelled, forms = canonical_glob(pattern)
    if forms & (FRAGMENT | MALFORMED):
        raise _Field("paths", f"a path glob without {describe(forms & (FRAGMENT | MALFORMED))}")
    if forms & ~allowed:
        names = [key for key, form in ALLOWANCES.items() if forms & ~allowed & form]
        raise _Field("paths", f"{' and '.join(names)} = true for the glob {pattern!r}")
    inner = spelled.split("/")[1:-1]  # between the leading slash and the last segment
    if any(segment in {"", ".", ".."} for segment in inner) or spelled.endswith(("/.", "/..")):
        raise _Field(
            "paths", f"a glob that can match ({pattern!r} has a '.', '..' or empty segment, "
            "which judged paths never have)"
        )  # fmt: skip
    return Glob(spelled, "/")


def _match(doc: Mapping[str, Any], allowed: int) -> Match:
    paths: tuple[Matcher, ...] = tuple(
        _path_glob(p, allowed) for p in _strings(doc.get("paths", []), "paths")
    )
    if "path_regex" in doc:
        if paths:
            raise _Field("path_regex", "either paths or path_regex, not both")
        if not isinstance(doc["path_regex"], str):
            raise _Field("path_regex", "a regular expression string")
        try:
            paths = (re.compile(doc["path_regex"]),)
        except (re.error, OverflowError) as exc:  # a{4294967296}: OverflowError, not re.error
            raise _Field("path_regex", f"a valid regular expression ({exc})") from None
    methods = _strings(doc.get("methods", []), "methods")
    hosts = _strings(doc.get("hosts", []), "hosts")
    for host in hosts:
        if ":" in host.strip("[]") and not host.startswith("["):
            # Rules match the host name without its port (a request for host:8443 is host).
            raise _Field(
                "hosts", f"host names without a port ({host!r}: write {host.rsplit(':', 1)[0]!r})"
            )
    return Match(
        hosts=tuple(Glob(h.lower(), ".") for h in hosts),
        paths=paths,
        methods=frozenset(m.upper() for m in methods),
        registry_actions=frozenset(_strings(doc.get("registry_actions", []), "registry_actions")),
        registry_namespaces=tuple(
            Glob(n, "/")
            for n in _strings(doc.get("registry_namespaces", []), "registry_namespaces")
        ),
    )


def _authorizer(raw: Any, webhooks: Mapping[str, Webhook]) -> Authorizer:
    spec: object = {"type": raw} if isinstance(raw, str) else raw
    if not isinstance(spec, Mapping) or spec.get("type") not in AUTHORIZERS:
        raise _Field("authorizer", "one of " + "|".join(AUTHORIZERS) + " (or {type = …})")
    kind = cast(AuthorizerKind, spec["type"])
    allowed: dict[str, set[str]] = {"allow": set(), "deny": set(), "roles": {"roles", "require"}}
    allowed |= {"aal": {"aal"}, "remote": {"webhook"}, "scopes": {"scopes", "require"}}
    unknown = set(spec) - {"type"} - allowed[kind]
    if unknown:
        raise _Field(f"authorizer.{sorted(unknown)[0]}", f"no such key for type {kind!r}")
    if kind == "roles":
        roles = _strings(spec.get("roles"), "authorizer.roles", non_empty=True)
        require = spec.get("require", "any")
        if require not in ("any", "all"):
            raise _Field("authorizer.require", "any|all")
        return Authorizer(kind, roles=frozenset(roles), require_all=require == "all")
    if kind == "scopes":
        scopes = _strings(spec.get("scopes"), "authorizer.scopes", non_empty=True)
        bad = [scope for scope in scopes if not valid_scope(scope)]
        if bad:
            raise _Field("authorizer.scopes", f"action:resource scopes ({bad[0]!r} is not one)")
        require = spec.get("require", "all")
        if require not in {"any", "all"}:
            raise _Field("authorizer.require", "any|all")
        return Authorizer(kind, scopes=scopes, require_all=require == "all")
    if kind == "aal":
        aal = spec.get("aal", "aal2")
        if aal not in ("aal1", "aal2"):
            raise _Field("authorizer.aal", "aal1|aal2")
        return Authorizer(kind, aal=aal)
    if kind == "remote":
        name = spec.get("webhook")
        if not isinstance(name, str) or name not in webhooks:
            known = ", ".join(sorted(webhooks)) or "none defined"
            raise _Field("authorizer.webhook", f"the name of a [webhooks.<name>] ({known})")
        return Authorizer(kind, webhook=name)
    return Authorizer(kind)


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        raise _Field("headers", "a table of header name = template")
    out: list[tuple[str, str]] = []
    for name, template in raw.items():
        if not _HEADER_NAME.fullmatch(name):
            raise _Field(f"headers.{name}", "a valid header name")
        if not isinstance(template, str):
            raise _Field(f"headers.{name}", "a template string")
        problem = template_error(template)
        if problem:
            raise _Field(f"headers.{name}", problem)
        out.append((name, template))
    return tuple(out)


def _rate_limit(raw: Any) -> RateLimit:
    if not isinstance(raw, Mapping) or set(raw) - {"per_ip", "per_subject", "window_s"}:
        raise _Field("rate_limit", "a table with per_ip, per_subject, window_s")
    values: dict[str, int] = {}
    for key in ("per_ip", "per_subject"):
        value = raw.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _Field(f"rate_limit.{key}", "an integer >= 0")
        values[key] = value
    window = raw.get("window_s", 60)
    # TOML has inf and nan: neither makes a window (every decision of the rule would fail).
    if not _finite(window) or window <= 0:
        raise _Field("rate_limit.window_s", "a number of seconds > 0")
    return RateLimit(values["per_ip"], values["per_subject"], float(window))


def _finite(value: object) -> bool:
    """A number an operator can mean: not a boolean, not TOML's ``inf`` or ``nan``."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _rule(doc: Mapping[str, Any], webhooks: Mapping[str, Webhook]) -> Rule:
    unknown = set(doc) - RULE_KEYS
    if unknown:
        raise _Field(sorted(unknown)[0], "no such key (typo?)")
    names = _strings(doc.get("authenticators"), "authenticators", non_empty=True)
    for name in names:
        if name not in AUTHENTICATORS:
            raise _Field("authenticators", "items among " + "|".join(AUTHENTICATORS))
    if "authorizer" not in doc:
        raise _Field("authorizer", "an authorizer (allow, deny, roles, aal, scopes, remote)")
    style = doc.get("error_style")
    if style is not None and style not in ("auto", "nginx"):
        raise _Field("error_style", "auto|nginx")
    identity_headers = doc.get("identity_headers", True)
    if not isinstance(identity_headers, bool):
        raise _Field("identity_headers", "true or false")
    allowed = _allowed_forms(doc)
    return Rule(
        id=doc["id"],
        match=_match(doc, allowed),
        authenticators=cast(tuple[AuthenticatorName, ...], names),
        authorizer=_authorizer(doc["authorizer"], webhooks),
        headers=_headers(doc.get("headers", {})),
        identity_headers=identity_headers,
        error_style=cast(ErrorStyle | None, style),
        rate_limit=_rate_limit(doc["rate_limit"]) if "rate_limit" in doc else None,
        allowed_forms=allowed,
        token_kinds=_token_kinds(doc, names),
    )


def _token_kinds(doc: Mapping[str, Any], authenticators: tuple[str, ...]) -> frozenset[TokenKind]:
    if "token_kinds" not in doc:
        return frozenset(TOKEN_KINDS)
    if "token" not in authenticators:
        raise _Field("token_kinds", "the token authenticator in authenticators")
    kinds = _strings(doc["token_kinds"], "token_kinds", non_empty=True)
    if any(kind not in TOKEN_KINDS for kind in kinds):
        raise _Field("token_kinds", "items among " + "|".join(TOKEN_KINDS))
    return frozenset(cast(tuple[TokenKind, ...], kinds))


def _ssl_context(doc: Mapping[str, Any]) -> ssl.SSLContext | None:
    cert, key, ca = (
        doc.get(k, "") for k in ("client_certificate", "client_private_key", "server_ca_bundle")
    )
    for name, value in (("client_certificate", cert), ("client_private_key", key)):
        if not isinstance(value, str):
            raise _Field(name, "a file path")
    if not isinstance(ca, str):
        raise _Field("server_ca_bundle", "a file path")
    if not (cert or ca):
        return None
    try:
        context = ssl.create_default_context(cafile=ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise _Field("server_ca_bundle", f"a readable PEM bundle ({exc})") from None
    if cert:
        try:
            context.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as exc:
            raise _Field(
                "client_certificate", f"a readable PEM certificate and key ({exc})"
            ) from None
    return context


def _webhook(name: str, doc: Any, env: Mapping[str, str], unset_env: list[str] | None) -> Webhook:
    if not isinstance(doc, Mapping):
        raise _Field("", "a table")
    unknown = set(doc) - WEBHOOK_KEYS
    if unknown:
        raise _Field(sorted(unknown)[0], "no such key (typo?)")
    url = doc.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _Field("url", "an http(s):// URL")
    timeout_ms = doc.get("timeout_ms", 1000)
    if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0:
        raise _Field("timeout_ms", "an integer > 0")
    token = doc.get("bearer_token", "")
    if not isinstance(token, str):
        raise _Field("bearer_token", "a string")
    if "bearer_token_env" in doc:
        token = _from_env(doc["bearer_token_env"], "bearer_token_env", env, unset_env)
    basic = doc.get("basic_auth")
    basic_pair: tuple[str, str] | None = None
    if basic is not None:
        if not isinstance(basic, Mapping) or not isinstance(basic.get("username"), str):
            raise _Field("basic_auth", "{ username = …, password = … | password_env = … }")
        password = basic.get("password", "")
        if not isinstance(password, str):
            raise _Field("basic_auth.password", "a string")
        if "password_env" in basic:
            password = _from_env(basic["password_env"], "basic_auth.password_env", env, unset_env)
        if ":" in basic["username"]:
            raise _Field("basic_auth.username", "a user name without ':' (RFC 7617)")
        basic_pair = (basic["username"], password)
    ttl = doc.get("cache_ttl_s", 60)
    if not _finite(ttl) or ttl < 0:
        raise _Field("cache_ttl_s", "a number of seconds >= 0")
    return Webhook(
        name=name,
        url=url,
        timeout=timeout_ms / 1000,
        bearer_token=token,
        basic_auth=basic_pair,
        forward_headers=_strings(doc.get("forward_headers", []), "forward_headers"),
        cache_ttl=float(ttl),
        ssl_context=_ssl_context(doc),
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _from_env(name: object, field: str, env: Mapping[str, str], unset: list[str] | None) -> str:
    """A secret named by an environment variable. The service needs it set; ``rules check``
    (``unset`` given) checks only the reference and lists the names not set where it runs."""
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        raise _Field(field, "the name of an environment variable")
    value = env.get(name, "")
    if value:
        return value
    if unset is None:
        raise _Field(field, f"the name of a set environment variable ({name} is not set)")
    unset.append(name)
    return ""


def parse_rules(
    text: str,
    source: str,
    env: Mapping[str, str] | None = None,
    *,
    unset_env: list[str] | None = None,
) -> RuleSet:
    """A validated ``RuleSet``; raises ``RulesError`` naming file, rule and field. With
    ``unset_env``, secrets' environment variables that are not set are listed there instead
    of refused (``rules check`` on a machine without the service's secrets)."""
    env = os.environ if env is None else env
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {source}: invalid TOML ({exc})") from None
    unknown = set(document) - {"rules", "webhooks"}
    if unknown:
        raise RulesError(f"rules file {source}: unknown top-level key(s) {sorted(unknown)}")
    webhooks: dict[str, Webhook] = {}
    raw_hooks = document.get("webhooks", {})
    if not isinstance(raw_hooks, dict):
        raise RulesError(f"rules file {source}: [webhooks] must be a table of tables")
    for name, doc in raw_hooks.items():
        try:
            webhooks[name] = _webhook(name, doc, env, unset_env)
        except _Field as exc:
            raise RulesError(f"rules file {source}: webhook '{name}': {exc}") from None
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RulesError(f"rules file {source}: rules must be an array of tables ([[rules]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for number, doc in enumerate(raw_rules, start=1):
        rule_id = doc.get("id") if isinstance(doc, dict) else None
        where = f"rules file {source}: rule #{number}"
        if not isinstance(rule_id, str) or not rule_id:
            raise RulesError(f"{where}: field 'id': expected a non-empty string")
        where += f" ({rule_id!r})"
        if rule_id in seen:
            raise RulesError(f"{where}: field 'id': expected a unique id (used twice)")
        seen.add(rule_id)
        try:
            rules.append(_rule(doc, webhooks))
        except _Field as exc:
            raise RulesError(f"{where}: {exc}") from None
    return RuleSet(tuple(rules), webhooks, source)


def load_rules_file(path: str, *, unset_env: list[str] | None = None) -> RuleSet:
    """Blocking: read and parse ``path`` (run it in an executor)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"rules file {path}: cannot be read ({exc.strerror})") from None
    return parse_rules(text, path, unset_env=unset_env)


def file_stamp(path: str) -> tuple[float, int, int] | None:
    """Blocking: what changes when the file is replaced or rewritten; None if missing."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size, stat.st_ino)
