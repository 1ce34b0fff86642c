"""The token page for signed-in users: server-rendered HTML on the public listener, a hook on
the kernel's ``HookTable`` (the prefix ``TOKENS_PAGE_PATH``), never an aiohttp view.

    GET  /tokens/                      the page: active tokens, create form, revoked (30 days)
    POST /tokens/create                create → the page with the secret, shown once
    POST /tokens/{id}/regenerate       a new secret, same settings, the old one revoked
    GET  /tokens/{id}/revoke           "are you sure?" (works without JavaScript)
    POST /tokens/{id}/revoke           revoke → 303 back to the page
    GET  /tokens/static/…              the stylesheet and the copy button's script
    …    /tokens/api/…                 the JSON API (``page_api``)
    POST /tokens/leaks                 leak reports (``leaks``)

Every state change needs the session's CSRF token and a same-site request; a page showing a
secret is answered after the POST that made it, never stored, never cached
(``Cache-Control: no-store``); the secret exists only in that one answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jinja2

from handlers.credentials import page_text
from handlers.credentials.csrf import cross_site
from handlers.credentials.page_api import api
from handlers.credentials.page_common import PageContext, Who, html_reply
from handlers.credentials.service import Made
from handlers.credentials.store import StoreUnavailable, TokenRecord
from handlers.credentials.tokens import is_token_id
from proxy.kernel.errors import MethodNotAllowed, NotFound
from proxy.kernel.hooked import Hooked, Reply

HERE = Path(__file__).parent
MAX_FORM = 16 * 1024
# Read at import (before any event loop): rendering never touches the disk.
_TEMPLATES = {p.name: p.read_text(encoding="utf-8") for p in (HERE / "templates").glob("*.html")}
_STATIC = {
    "tokens.css": ((HERE / "static" / "tokens.css").read_bytes(), "text/css; charset=utf-8"),
    "copy.js": ((HERE / "static" / "copy.js").read_bytes(), "text/javascript; charset=utf-8"),
}
ENV = jinja2.Environment(loader=jinja2.DictLoader(_TEMPLATES), autoescape=True)
REASONS = {
    "revoked": "Manual revocation",
    "regenerated": "Regenerated",
    "leaked": "Reported leaked",
}


def _view(record: TokenRecord, now: float) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "hint": record.hint,
        "scopes": record.scopes,
        "created": page_text.day(record.created_at),
        "last_used": page_text.ago(record.last_used_at, now),
        "expires": page_text.expiry(record.expires_at, now),
        "revoked": page_text.day(record.revoked_at),
        "reason": REASONS.get(record.revoked_reason or "", record.revoked_reason or ""),
    }


class TokenPage:
    def __init__(self, context: PageContext) -> None:
        self.c = context

    def render(self, template: str, **values: Any) -> str:
        return ENV.get_template(template).render(base=self.c.base, **values)

    async def __call__(self, request: Hooked) -> Reply:
        await self.c.credentials.prepare()  # the scope catalogue (a no-op once read)
        rest = request.view.path[len(self.c.page_path) :].rstrip("/")
        parts = [p for p in rest.split("/") if p]
        if parts[:1] == ["api"]:
            return await api(self.c, request, parts[1:])
        if parts[:1] == ["leaks"]:
            from handlers.credentials.leaks import leak_report

            return await leak_report(self.c, request)
        if parts[:1] == ["static"] and len(parts) == 2 and parts[1] in _STATIC:
            body, media = _STATIC[parts[1]]
            return Reply.own(200, body, {"Content-Type": media, "Cache-Control": "max-age=300"})
        try:
            return await self._page(request, parts)
        except StoreUnavailable:
            return self._message(
                request, 503, "Tokens are unavailable", "The token store cannot be reached."
            )

    async def _page(self, request: Hooked, parts: list[str]) -> Reply:
        method = request.method
        if method not in {"GET", "HEAD", "POST"}:
            raise MethodNotAllowed()
        who = await self.c.who(request)
        if who == "unavailable":
            return self._message(
                request, 503, "Sign-in is unavailable", "The identity service cannot be reached."
            )
        if who == "signed_out":
            return self._signin(request)
        fields: dict[str, list[str]] = {}
        if method == "POST":
            refused = await self._refused(request, who)
            if isinstance(refused, Reply):
                return refused
            fields = refused
        if not parts and method != "POST":
            notice = {"revoked": "Token revoked."}.get(request.view.param("done"), "")
            return await self._show(request, who, notice=notice)
        if parts == ["create"] and method == "POST":
            return await self._create(request, who, fields)
        if len(parts) == 2 and is_token_id(parts[0]):
            token_id, action = parts
            if action == "revoke" and method == "POST":
                return await self._revoke(request, who, token_id)
            if action == "revoke":
                return await self._confirm(request, who, token_id)
            if action == "regenerate" and method == "POST":
                return await self._regenerate(request, who, token_id)
        raise NotFound()

    async def _refused(self, request: Hooked, who: Who) -> Reply | dict[str, list[str]]:
        """The form's fields, or the answer refusing a cross-site or token-less post."""
        body = await request.read(MAX_FORM, "The form")
        fields = page_text.form_fields(body)
        token = page_text.first(fields, "csrf_token")
        if cross_site(request.headers) or not self.c.csrf.valid(who.session_id, token):
            return self._message(
                request,
                403,
                "This form has expired",
                "The page was open too long or came from elsewhere. Reload it and try again.",
                who=who,
            )
        return fields

    def _signin(self, request: Hooked) -> Reply:
        return self._message(
            request,
            401,
            "Sign in to manage your tokens",
            "Personal access tokens belong to your account.",
            link=self.c.login_url(request),
            link_text="Sign in",
        )

    def _message(
        self, request: Hooked, status: int, heading: str, text: str, **values: Any
    ) -> Reply:
        who = values.pop("who", None)
        values.setdefault("link", "")
        values.setdefault("link_text", "")
        html = self.render(
            "message.html", who=who.email if who else "", heading=heading, text=text, **values
        )
        return html_reply(status, html)

    async def _show(
        self,
        request: Hooked,
        who: Who,
        *,
        status: int = 200,
        made: Made | None = None,
        notice: str = "",
        problems: dict[str, str] | None = None,
        form: dict[str, Any] | None = None,
    ) -> Reply:
        now = time.time()
        active, revoked = await self.c.mine(who)
        config = self.c.config
        presets = list(config.expiry_presets)
        offered = self.c.credentials.catalogue.offered_to(who.roles)
        html = self.render(
            "page.html",
            who=who.email or who.identity_id,
            made=made,
            notice=notice,
            csrf=self.c.csrf.token(who.session_id),
            offered=offered,
            presets=presets,
            allow_never=config.allow_never,
            aal2_needed=self.c.needs_aal2(who),
            step_up_url=self.c.login_url(request, aal2=True),
            problems=problems or {},
            form=form
            or {"name": "", "scopes": (), "expiry": presets[min(1, len(presets) - 1)]}
            | {"expires_on": ""},
            tomorrow=page_text.iso_day(now + 86400),
            latest=page_text.iso_day(now + config.max_days * 86400),
            active=[_view(r, now) for r in active],
            revoked=[_view(r, now) for r in revoked],
        )
        return html_reply(status, html)

    async def _create(self, request: Hooked, who: Who, fields: dict[str, list[str]]) -> Reply:
        if self.c.needs_aal2(who):
            return await self._show(request, who, status=403)
        config = self.c.config
        expiry = page_text.first(fields, "expiry")
        expires = page_text.expires_from(
            expiry,
            page_text.first(fields, "expires_on"),
            presets=config.expiry_presets,
            allow_never=config.allow_never,
            max_days=config.max_days,
            now=time.time(),
        )
        name = page_text.first(fields, "name")
        scopes = fields.get("scopes", [])
        wanted = page_text.creation(name, scopes, expires, self.c.offered(who))
        if isinstance(wanted, dict):
            form = {
                "name": page_text.clean_name(name),
                "scopes": tuple(scopes),
                "expiry": expiry,
                "expires_on": page_text.first(fields, "expires_on"),
            }
            return await self._show(request, who, status=422, problems=wanted, form=form)
        made = await self.c.credentials.issue(
            "pat",
            owner=who.identity_id,
            name=wanted.name,
            scopes=wanted.scopes,
            expires_at=wanted.expires_at,
            created_by=who.identity_id,
            origin="page",
        )
        return await self._show(request, who, status=201, made=made)

    async def _confirm(self, request: Hooked, who: Who, token_id: str) -> Reply:
        record = await self.c.own_token(who, token_id)
        if record is None or record.revoked_at is not None:
            raise NotFound()
        html = self.render(
            "confirm.html",
            who=who.email or who.identity_id,
            token=record,
            csrf=self.c.csrf.token(who.session_id),
        )
        return html_reply(200, html)

    async def _revoke(self, request: Hooked, who: Who, token_id: str) -> Reply:
        if await self.c.own_token(who, token_id) is None:
            raise NotFound()
        await self.c.credentials.revoke(token_id, by=who.identity_id)
        location = f"{self.c.base}/?done=revoked"
        return Reply.own(303, b"", (("Location", location), ("Cache-Control", "no-store")))

    async def _regenerate(self, request: Hooked, who: Who, token_id: str) -> Reply:
        if self.c.needs_aal2(who):
            return await self._show(request, who, status=403)
        if await self.c.own_token(who, token_id) is None:
            raise NotFound()
        made = await self.c.credentials.regenerate(token_id, by=who.identity_id, origin="page")
        if made is None:
            raise NotFound()
        return await self._show(request, who, status=201, made=made)
