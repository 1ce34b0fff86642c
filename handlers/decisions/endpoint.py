"""The ``/decisions`` endpoint: original request → rule → authenticators → authorizer → answer.

Fail-closed throughout: no rule, no credential, an ambiguous path the matched rule does not
allow, an unreachable Kratos or webhook, or an unexpected error all end in a non-2xx answer —
only an explicit allow is a 200.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web

from config.decisions import DecisionsSettings
from handlers.decisions.authenticators import (
    Authenticator,
    AuthResult,
    Found,
    authenticate,
    authenticate_known,
    find_credential,
)
from handlers.decisions.authorizers import SIGN_IN, authorize
from handlers.decisions.decision_keys import DECIDER
from handlers.decisions.decision_metrics import DECISIONS
from handlers.decisions.deny import Answer, Caller, Denial, deny, is_browser
from handlers.decisions.identity_headers import allow_headers
from handlers.decisions.paths import describe
from handlers.decisions.reload import RulesHolder
from handlers.decisions.remote import RemoteAuthorizer
from handlers.decisions.request import OriginalRequest, ProxyTrust, read_original
from handlers.decisions.rule_limits import RateLimiter
from handlers.decisions.rules import Rule
from handlers.decisions.subject import Subject
from proxy.kernel.kernel_keys import REQUEST_ID, ROUTE
from proxy.kernel.sessions.cache import SessionCache
from proxy.kernel.tokens import RefusalReason, TokenRefusal, TokenVerifier

log = logging.getLogger("kratos_hooks.decisions")

ENDPOINT = "/decisions"

_OUTCOME_DENIALS: Mapping[str, Denial] = {
    "none": Denial("unauthenticated", SIGN_IN),
    "invalid": Denial("unauthenticated", "The session is invalid or has expired."),
    "step_up": Denial("step_up", "This resource requires a second authentication factor."),
    "error": Denial("unavailable", "The identity service is unavailable; access is denied."),
}
_INVALID = "The token is invalid."
_TOKEN_DENIALS: Mapping[RefusalReason, Denial] = {
    "malformed": Denial("invalid_token", "The token is malformed."),
    "unknown": Denial("invalid_token", _INVALID),
    "revoked": Denial("invalid_token", "The token has been revoked."),
    "owner_inactive": Denial("invalid_token", "The token's owner is no longer active."),
    "expired": Denial("token_expired", "The token has expired."),
    "unavailable": Denial("unavailable", "The credential store is unavailable; access is denied."),
}
_KIND_REFUSED = Denial("invalid_token", "This kind of token is not accepted here.")


def _refusal(refusal: TokenRefusal | None) -> Denial:
    if refusal is None:
        return _TOKEN_DENIALS["unavailable"]
    if refusal.reason == "rate_limited":
        return Denial("rate_limited", "Too many requests; try again later.", refusal.retry_after)
    return _TOKEN_DENIALS[refusal.reason]


def _auth_denial(auth: AuthResult) -> Denial:
    if auth.outcome == "token_refused":
        return _refusal(auth.refusal)
    return _OUTCOME_DENIALS[auth.outcome]


@dataclass(slots=True)
class Decider:
    settings: DecisionsSettings
    trust: ProxyTrust
    rules: RulesHolder
    authenticators: Mapping[str, Authenticator]
    cache: SessionCache
    remote: RemoteAuthorizer
    limiter: RateLimiter
    tokens: TokenVerifier | None = None

    def kind_refused(self, rule: Rule, found: Found | None) -> bool:
        """A token of a kind this rule does not accept: refused before any look-up."""
        if found is None or found[1].kind != "api_token" or self.tokens is None:
            return False
        kind = self.tokens.kind_of(found[1].value)
        return kind is not None and kind not in rule.token_kinds

    async def _limit(self, rule: Rule, scope: str, who: str) -> Denial | None:
        limits = rule.rate_limit
        limit = 0 if limits is None else (limits.per_ip if scope == "ip" else limits.per_subject)
        if limits is None or limit <= 0:
            return None
        retry_after = await self.limiter.hit(rule.id, scope, who, limit, limits.window)
        if retry_after is None:
            return None
        return Denial("rate_limited", "Too many requests; try again later.", retry_after)

    async def _remote(
        self, rule: Rule, original: OriginalRequest, request: web.Request, subject: Subject
    ) -> Denial | None:
        webhook = self.rules.current.webhooks.get(rule.authorizer.webhook)
        if webhook is None or not await self.remote.allows(
            webhook, original, subject, request.headers
        ):
            return Denial("forbidden", "The authorization service denied the request.")
        return None

    async def _step_up(self, rule: Rule, auth: AuthResult) -> tuple[Denial | None, Subject]:
        """Ask again before sending a user to step up: the cached session may predate the
        second factor they just completed."""
        assert auth.credential is not None and auth.subject is not None
        fresh = await self.cache.refresh(auth.credential)
        if fresh.verdict == "valid" and fresh.session is not None:
            subject = Subject(fresh.session, self.settings.roles_path, fresh.memo)
            return authorize(rule.authorizer, subject), subject
        if fresh.verdict == "invalid":
            return _OUTCOME_DENIALS["invalid"], Subject()
        return authorize(rule.authorizer, auth.subject), auth.subject

    def decide_known(
        self, rule: Rule, found: Found | None, original: OriginalRequest
    ) -> tuple[Denial | None, Subject] | None:
        """The decision without a coroutine when nothing needs waiting for — no rate limit, a
        local authorizer, a credential whose session or token is in memory, no step-up to
        re-check: most decisions. None: ``decide`` takes it."""
        if rule.rate_limit is not None or rule.authorizer.kind == "remote":
            return None
        auth = authenticate_known(found, original)
        if auth is None:
            return None
        if auth.outcome != "subject" or auth.subject is None:
            return _auth_denial(auth), Subject()
        denial = authorize(rule.authorizer, auth.subject)
        if denial is not None and denial.kind == "step_up" and auth.credential is not None:
            return None  # the user may have just stepped up: ``decide`` asks again
        return denial, auth.subject

    async def decide(
        self, rule: Rule, original: OriginalRequest, request: web.Request, found: Found | None
    ) -> tuple[Denial | None, Subject]:
        if rule.rate_limit is not None:
            denial = await self._limit(rule, "ip", original.client_ip)
            if denial is not None:
                return denial, Subject()
        auth = await authenticate(found, original)
        if auth.outcome != "subject" or auth.subject is None:
            return _auth_denial(auth), Subject()
        subject = auth.subject
        if rule.authorizer.kind == "remote":
            denial = await self._remote(rule, original, request, subject)
        else:  # the local authorizers decide without a coroutine
            denial = authorize(rule.authorizer, subject)
            if denial is not None and denial.kind == "step_up" and auth.credential is not None:
                denial, subject = await self._step_up(rule, auth)
        if denial is None and rule.rate_limit is not None and not subject.anonymous:
            denial = await self._limit(rule, "subject", subject.id)
        return denial, subject


def _refused(forms: int) -> Denial:
    """A path the app could route differently than the rules judged it: never decided."""
    return Denial("bad_path", f"The request path contains {describe(forms)}, which is refused.")


def _count(rule_id: str, result: str) -> None:
    DECISIONS.labels(rule_id, result).count += 1


def _respond(answer: Answer, method: str) -> web.Response:
    headers = dict(answer.headers)
    headers["Cache-Control"] = "no-store"
    if answer.body is None:
        return web.Response(status=answer.status, headers=headers)
    body = orjson.dumps(answer.body) if method != "HEAD" else None
    headers["Content-Type"] = "application/json"
    return web.Response(status=answer.status, body=body, headers=headers)


def _tail(raw_path: str) -> str | None:
    """The raw path after ``/decisions`` as the auth call carried it; None for the endpoint
    itself. The router matched the *decoded* path: a raw path spelling the endpoint's name
    with escapes is judged whole rather than cut at a guessed offset."""
    path = raw_path.partition("?")[0]
    if path == ENDPOINT:
        return None
    return path[len(ENDPOINT) :] if path.startswith(ENDPOINT) else path


async def handle(request: web.Request) -> web.StreamResponse:
    request[ROUTE] = "decisions"
    decider = request.app[DECIDER]
    settings = decider.settings
    raw_path = request.raw_path
    original = read_original(
        request.headers,
        method=request.method,
        scheme=request.scheme,
        peer=request.remote or "",
        tail=_tail(raw_path) if len(raw_path) > len(ENDPOINT) else None,
        query=raw_path.partition("?")[2],
        trust=decider.trust,
    )
    rule = decider.rules.current.first_match(original)
    if rule is None:
        denial: Denial | None = Denial(
            "not_found", "No access rule matches this request.", status=settings.no_match_status
        )
        subject = Subject()
    elif original.forms and original.forms & ~rule.allowed_forms:  # most paths have none
        denial, subject = _refused(original.forms & ~rule.allowed_forms), Subject()
    else:
        found = find_credential(rule.authenticators, decider.authenticators, request.headers)
        if decider.kind_refused(rule, found):
            denial, subject = _KIND_REFUSED, Subject()
        else:
            decided = decider.decide_known(rule, found, original)
            if decided is None:
                decided = await decider.decide(rule, original, request, found)
            denial, subject = decided
    rule_id = rule.id if rule is not None else "none"
    if denial is None:
        assert rule is not None  # a denial is always set when no rule matched
        _count(rule_id, "allow")
        headers = allow_headers(subject, rule.headers, with_identity=rule.identity_headers)
        return web.Response(status=200, headers=headers)
    _count(rule_id, denial.kind)
    log.debug("decision denied", extra={"rule": rule_id, "result": denial.kind})
    caller = Caller(
        original=original,
        browser=is_browser(request.headers.get("Accept"), request.headers.get("X-Requested-With")),
        style=rule.error_style if rule is not None and rule.error_style else settings.error_style,
        login_url=settings.login_url,
        request_id=request[REQUEST_ID],
    )
    return _respond(deny(denial, caller), request.method)
