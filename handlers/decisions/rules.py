"""The access-rules model and its matching: pure, immutable, I/O-free.

Rules are tried **in file order and the first match wins** (no "most specific" scoring: an
order a reader can see beats a heuristic they must guess). A rule matches when every
condition it sets holds: host glob, path glob or regex (on the path only, query dropped),
method, and — for registry callers — the ``X-Registry-Action`` and namespace.

Paths are matched in their canonical spelling (``handlers.decisions.paths``); a path carrying
an ambiguous form (``%2F``, ``;`` …) is refused unless the rule that matched it allows that
form (``allowed_forms``).

Globs: in paths ``*`` is one segment's characters and ``**`` anything, ``/`` included; in
hosts ``*`` is one label and ``**`` any number of them. Regexes must match the whole path.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from handlers.decisions.request import OriginalRequest
from proxy.kernel.tokens import TOKEN_KINDS, TokenKind

AuthenticatorName = Literal["anonymous", "session_cookie", "session_token", "token"]
AUTHENTICATORS: tuple[AuthenticatorName, ...] = (
    "anonymous",
    "session_cookie",
    "session_token",
    "token",
)
AuthorizerKind = Literal["allow", "deny", "roles", "aal", "remote", "scopes"]
AUTHORIZERS: tuple[AuthorizerKind, ...] = ("allow", "deny", "roles", "aal", "remote", "scopes")
ErrorStyle = Literal["auto", "nginx"]


def glob_to_regex(pattern: str, separator: str) -> re.Pattern[str]:
    """``**`` crosses separators, ``*`` and ``?`` do not; everything else is literal."""
    sep = re.escape(separator)
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(f"[^{sep}]*")
            i += 1
        elif pattern[i] == "?":
            out.append(f"[^{sep}]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.IGNORECASE if separator == "." else 0)


class Matcher(Protocol):
    """What a rule matches text with: a compiled ``Glob`` or a ``path_regex``."""

    def fullmatch(self, text: str) -> object: ...


class Glob:
    """A glob, compiled for matching.

    Most rules' globs are a literal (``/healthz``) or a literal followed by ``**``
    (``/app/**``): those are answered by comparing strings, the rest by ``glob_to_regex``. On
    a loaded listener one regex call cost a decision about 1.7 µs (measured ad hoc), most of
    it the regex engine's code coming back into the CPU caches; a string comparison costs
    next to nothing. Host text arrives lower-cased and host globs are lower-cased when
    loaded, so comparing strings is case-insensitive for hosts as the regex is.
    """

    __slots__ = ("_exact", "_prefix", "_regex")

    def __init__(self, pattern: str, separator: str) -> None:
        head = pattern.removesuffix("**")
        literal = "*" not in head and "?" not in head
        self._exact = pattern if literal and head == pattern else None
        self._prefix = head if literal and head != pattern else None
        self._regex = None if literal else glob_to_regex(pattern, separator)

    def fullmatch(self, text: str) -> bool:
        if self._prefix is not None:
            return text.startswith(self._prefix)
        if self._exact is not None:
            return text == self._exact
        assert self._regex is not None
        return self._regex.fullmatch(text) is not None


def _any_full(patterns: tuple[Matcher, ...], text: str) -> bool:
    # A loop, not any(<generator>): every decision runs this, and the generator costs more
    # than the one or two patterns a rule usually has.
    for pattern in patterns:
        if pattern.fullmatch(text):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Match:
    hosts: tuple[Matcher, ...] = ()
    paths: tuple[Matcher, ...] = ()
    methods: frozenset[str] = frozenset()
    registry_actions: frozenset[str] = frozenset()
    registry_namespaces: tuple[Matcher, ...] = ()

    def matches(self, original: OriginalRequest) -> bool:
        if self.methods and original.method not in self.methods:
            return False
        if self.hosts and not _any_full(self.hosts, original.hostname):
            return False
        if self.paths and not _any_full(self.paths, original.path):
            return False
        if self.registry_actions:
            if original.registry.get("X-Registry-Action", "") not in self.registry_actions:
                return False
        if self.registry_namespaces:
            namespace = original.registry.get("X-Registry-Namespace", "")
            if not any(p.fullmatch(namespace) for p in self.registry_namespaces):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Authorizer:
    kind: AuthorizerKind
    roles: frozenset[str] = frozenset()
    require_all: bool = False
    aal: str = "aal2"
    webhook: str = ""
    scopes: tuple[str, ...] = ()  # ``scopes``: required, all of them unless ``require_all`` is off


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_ip: int = 0
    per_subject: int = 0
    window: float = 60.0


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    match: Match
    authenticators: tuple[AuthenticatorName, ...]
    authorizer: Authorizer
    # Extra headers: (name, template) rendered from the session on allow.
    headers: tuple[tuple[str, str], ...] = ()
    identity_headers: bool = True
    error_style: ErrorStyle | None = None
    rate_limit: RateLimit | None = None
    # The ambiguous path forms (``paths.ALLOWANCES`` bits) this rule's backends need.
    allowed_forms: int = 0
    # Which kinds of token the ``token`` authenticator accepts for this rule.
    token_kinds: frozenset[TokenKind] = frozenset(TOKEN_KINDS)


@dataclass(frozen=True, slots=True)
class Webhook:
    """A remote status-code authorizer (the registry ADR's ``auth.webhook.<name>``)."""

    name: str
    url: str
    timeout: float = 1.0
    bearer_token: str = field(default="", repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    forward_headers: tuple[str, ...] = ()
    cache_ttl: float = 60.0
    # Built at load time (it reads certificate files); None = the default system trust.
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    webhooks: Mapping[str, Webhook] = field(default_factory=dict)
    source: str = ""

    def first_match(self, original: OriginalRequest) -> Rule | None:
        for rule in self.rules:
            if rule.match.matches(original):
                return rule
        return None
