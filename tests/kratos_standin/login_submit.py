"""POST /self-service/login: the password, identifier_first and totp methods."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hmac
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from . import bodies, csrf, gostd
from .browser import (
    csrf_cookie,
    csrf_from_cookie,
    device_of,
    forward_error,
    get_state,
    has_browser_cookies,
    new_flow,
    parse_transient_payload,
    see_other,
    session_cookie,
    session_from_cookie,
    session_from_token,
    ui_url,
)
from .errors import (
    FlowExpiredError,
    KratosError,
    LocationChangeError,
    bad_request,
    csrf_violation,
    error_response,
    json_response,
    not_found,
)
from .login import aal1_required, already_logged_in
from .negotiation import is_json_request
from .state import AuthMethod, LoginFlow, SessionRecord, StandinState
from .timefmt import rfc3339


class _Submit:
    """One login submission: the flow, the request and how to answer it."""

    def __init__(self, request: web.Request, state: StandinState, flow: LoginFlow) -> None:
        self.request = request
        self.state = state
        self.flow = flow
        self.api = flow.type == "api"
        self.json = self.api or is_json_request(request)

    # --- answers ---------------------------------------------------------
    def forward(self, error: KratosError) -> web.Response:
        return forward_error(self.request, error, api=self.api)

    def show_flow(self) -> web.Response:
        """The flow now carries messages: 400 with it (JSON) or back to the login UI."""
        if self.flow.type == "browser":
            real = csrf_from_cookie(self.request, self.state)
            if real is not None:
                self.flow.csrf_token = csrf.mask(real)
        if self.json:
            return json_response(bodies.login_flow(self.flow, self.state), 400)
        return see_other(ui_url(self.state, self.flow.id))

    def fail(
        self,
        *,
        messages: list[dict[str, Any]] | None = None,
        node_messages: dict[str, list[dict[str, Any]]] | None = None,
    ) -> web.Response:
        self.flow.messages = messages or []
        self.flow.node_messages = node_messages or {}
        return self.show_flow()

    # --- checks ----------------------------------------------------------
    def check_origin(self, body: dict[str, Any]) -> None:
        """flow.EnsureCSRF: API flows must not look like browsers; browser flows need the token."""
        headers = self.request.headers
        if self.api:
            if headers.get("Origin"):
                raise bad_request(
                    'The HTTP Request Header included the "Origin" key, indicating that this '
                    "request was made as part of an AJAX request in a Browser. The flow however "
                    "was initiated as an API request. To prevent potential misuse and mitigate "
                    "several attack vectors including CSRF, the request has been blocked. "
                    "Please consult the documentation."
                )
            if has_browser_cookies(self.request):
                raise bad_request(
                    'The HTTP Request Header included the "Cookie" key, indicating that this '
                    "request was made by a Browser. The flow however was initiated as an API "
                    "request. To prevent potential misuse and mitigate several attack vectors "
                    "including CSRF, the request has been blocked. Please consult the "
                    "documentation."
                )
            return
        sent = body.get("csrf_token")
        if not csrf.verify(
            csrf_from_cookie(self.request, self.state), sent if isinstance(sent, str) else None
        ):
            raise csrf_violation()

    # --- methods ---------------------------------------------------------
    async def password(self, body: dict[str, Any]) -> web.StreamResponse:
        identifier = _text(body, "identifier") or _text(body, "password_identifier")
        password = _text(body, "password")
        self.flow.identifier = identifier
        self.flow.transient_payload = parse_transient_payload(body.get("transient_payload"))
        missing = {
            name: [bodies.missing_property(name)]
            for name, value in (("identifier", identifier), ("password", password))
            if not value
        }
        if missing:
            return self.fail(node_messages=missing)
        self.check_origin(body)

        await asyncio.sleep(self.state.hash_delay)
        identity_id = self.state.find_by_identifier(identifier)
        self.state.password_checks[identity_id or ""] += 1
        credential = self.state.passwords.get(identity_id or "")
        if credential is None or not hmac.compare_digest(
            credential.password.encode(), password.encode()
        ):
            return self.fail(messages=[bodies.invalid_credentials()])
        assert identity_id is not None
        if self.state.identities[identity_id]["state"] != "active":
            return self.forward(
                KratosError(
                    401, reason="This account was disabled.", message="identity is disabled"
                )
            )
        token, _ = self.state.create_session(identity_id, device=device_of(self.request))
        session = self.state.session_by_token(token)
        assert session is not None
        self.flow.active = "password"
        return self.succeed(session, second_factor=credential.totp)

    def identifier_first(self, body: dict[str, Any]) -> web.StreamResponse:
        identifier = _text(body, "identifier")
        self.flow.transient_payload = parse_transient_payload(body.get("transient_payload"))
        if not identifier:
            return self.fail(node_messages={"identifier": [bodies.missing_property("identifier")]})
        self.check_origin(body)
        # Enumeration mitigation: the next step looks the same whether the account exists.
        self.flow.identifier = identifier
        self.flow.stage = "identifier_password"
        self.flow.active = "identifier_first"
        return self.fail()

    def totp(self, body: dict[str, Any]) -> web.StreamResponse:
        self.check_origin(body)
        session = (
            session_from_token(self.request, self.state)
            if self.api
            else session_from_cookie(self.request, self.state)
        )
        if session is None:
            return self.forward(aal1_required())
        if not hmac.compare_digest(
            _text(body, "totp_code").encode(), self.state.totp_code.encode()
        ):
            return self.fail(node_messages={"totp_code": [bodies.invalid_totp()]})
        now = self.state.now()
        session.aal = "aal2"
        session.authenticated_at = now
        session.methods.append(AuthMethod("totp", "aal2", now))
        self.flow.active = "totp"
        return self.succeed(session, second_factor=False)

    # --- success ---------------------------------------------------------
    def succeed(self, session: SessionRecord, *, second_factor: bool) -> web.StreamResponse:
        state = self.state
        session_body = bodies.session(session, state.identities[session.identity_id])
        if self.api:
            return json_response(
                {"session_token": session.token, "session": session_body, "continue_with": []}
            )
        # A new principal: Kratos regenerates the CSRF token, then writes the session cookie.
        real = csrf.new_token()
        cookies = [csrf_cookie(state, real), session_cookie(state, session)]
        if second_factor and session.aal == "aal1":
            step_up = new_flow(
                self.request,
                state,
                "browser",
                stage="totp",
                csrf_real=real,
                return_to=self.flow.return_to,
                requested_aal="aal2",
                url=f"{state.base_url}/self-service/login/browser?aal=aal2",
            )
            target = ui_url(state, step_up.id)
            if not self.json:
                return see_other(target, cookies)
            response = error_response(self.request, LocationChangeError(target))
        elif self.json:
            response = json_response({"session": session_body, "continue_with": []})
        else:
            return see_other(self.flow.return_to or state.default_return_to, cookies)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie)
        return response


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value if isinstance(value, str) else ""


def _parse_multipart(content_type: str, raw: bytes) -> dict[str, Any]:
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP
    )
    if not message.is_multipart():
        raise bad_request("Unable to decode multipart/form-data payload.")
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes) and not part.get_filename():
            fields.setdefault(name, payload.decode(part.get_content_charset() or "utf-8"))
    return fields


async def read_body(request: web.Request) -> dict[str, Any]:
    decoder = gostd.body_decoder(request.headers.get("Content-Type"))
    content_type = request.headers.get("Content-Type", "")
    if decoder == "json":
        try:
            data = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"Unable to decode JSON payload: {exc}") from exc
        if not isinstance(data, dict):
            raise bad_request("Unable to decode JSON payload: expected an object")
        return data
    if decoder == "form":
        # Go's ParseForm: url.ParseQuery of the body, PostForm.Get reads the first value.
        pairs = parse_qsl((await request.read()).decode("utf-8", "replace"), keep_blank_values=True)
        fields: dict[str, Any] = {}
        for key, value in pairs:
            fields.setdefault(key, value)
        return fields
    if decoder == "multipart":
        # The call recorder already consumed the stream, so parse the cached bytes.
        return _parse_multipart(request.headers["Content-Type"], await request.read())
    raise bad_request(
        "Unable to decode body because HTTP Request Content-Type header is not supported: "
        f"{content_type!r}"
    )


def _expired(submit: _Submit) -> web.StreamResponse:
    """Replace the flow with a fresh one that says why, as Kratos' flow error handler does."""
    state, old = submit.state, submit.flow
    since = state.now() - old.expires_at
    real = csrf_from_cookie(submit.request, state) if old.type == "browser" else None
    cookies: list[str] = []
    if old.type == "browser" and real is None:
        real = csrf.new_token()
        cookies.append(csrf_cookie(state, real))
    stage = "identifier" if old.stage == "identifier_password" else old.stage
    fresh = new_flow(
        submit.request,
        state,
        old.type,
        stage=stage,
        csrf_real=real,
        return_to=old.return_to,
        refresh=old.refresh,
        requested_aal=old.requested_aal,
        url=old.request_url,
    )
    fresh.messages = [bodies.flow_expired(since.total_seconds() / 60, old.expires_at)]
    if old.type == "browser" and not submit.json:
        return see_other(ui_url(state, fresh.id), cookies)
    raise FlowExpiredError(
        expired_at=rfc3339(old.expires_at),
        since_ns=int(since.total_seconds() * 1e9),
        use_flow_id=fresh.id,
    )


async def submit_login(request: web.Request) -> web.StreamResponse:
    state = get_state(request)
    flow_id = gostd.flow_param(request.query_string, "flow")
    flow = state.flows.get(flow_id)
    if flow is None:
        error = (
            not_found()
            if flow_id
            else bad_request("The flow query parameter is missing or malformed.")
        )
        return forward_error(request, error)
    submit = _Submit(request, state, flow)

    if flow.requested_aal == "aal1" and not flow.refresh:
        existing = (
            session_from_token(request, state)
            if submit.api
            else session_from_cookie(request, state)
        )
        if existing is not None:
            if submit.json:
                raise already_logged_in()
            return see_other(state.default_return_to)
    if flow.expires_at < state.now():
        return _expired(submit)

    try:
        body = await read_body(request)
        method = body.get("method")
        if flow.stage == "totp":
            if method == "totp":
                return submit.totp(body)
        elif method == "password":
            return await submit.password(body)
        elif method == "identifier_first" and state.login_style == "identifier_first":
            return submit.identifier_first(body)
    except KratosError as error:
        return submit.forward(error)
    return submit.fail(messages=[bodies.no_strategy()])
