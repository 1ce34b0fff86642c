"""Kratos' error bodies (ory/herodot) and the exception handlers raise to produce them.

KratosError          -> {"error": {...}} with the HTTP status it carries
  FlowExpiredError   -> adds expired_at / since / use_flow_id (410)
  LocationChangeError-> adds redirect_browser_to (422 browser_location_change_required)
  AALNotSatisfiedError -> adds redirect_browser_to (403 session_aal2_required)
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# herodot's default "message" for each status it predefines.
_DEFAULT_MESSAGES = {
    400: "The request was malformed or contained invalid parameters",
    401: "The request could not be authorized",
    403: "The requested action was forbidden",
    404: "The requested resource could not be found",
    409: "The resource could not be created due to a conflict",
    410: (
        "The requested resource is no longer available because it has expired "
        "or is otherwise invalid."
    ),
    500: "An internal server error occurred, please contact the system administrator",
}


def status_text(code: int) -> str:
    return HTTPStatus(code).phrase


class KratosError(Exception):
    def __init__(
        self,
        code: int,
        *,
        id: str | None = None,
        reason: str | None = None,
        message: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.id = id
        self.reason = reason
        self.message = message or _DEFAULT_MESSAGES.get(code, status_text(code))
        self.details = details
        super().__init__(f"{code} {self.id or ''} {self.reason or self.message}")

    def error_object(self, request_id: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {}
        if self.id:
            error["id"] = self.id
        error["code"] = self.code
        error["status"] = status_text(self.code)
        if request_id:
            error["request"] = request_id
        if self.reason:
            error["reason"] = self.reason
        if self.details:
            error["details"] = self.details
        error["message"] = self.message
        return error

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return {"error": self.error_object(request_id)}


class FlowExpiredError(KratosError):
    def __init__(self, *, expired_at: str, since_ns: int, use_flow_id: str) -> None:
        minutes = since_ns / 60e9
        super().__init__(
            410,
            id="self_service_flow_expired",
            reason=(
                f"The self-service flow expired {minutes:.2f} minutes ago, initialize a new one."
            ),
            message="self-service flow expired",
        )
        self.expired_at = expired_at
        self.since_ns = since_ns
        self.use_flow_id = use_flow_id

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return {
            **super().body(request_id),
            "expired_at": self.expired_at,
            "since": self.since_ns,
            "use_flow_id": self.use_flow_id,
        }


class LocationChangeError(KratosError):
    def __init__(self, redirect_to: str) -> None:
        super().__init__(
            422,
            id="browser_location_change_required",
            reason=f"In order to complete this flow please redirect the browser to: {redirect_to}",
            message="browser location change required",
        )
        self.redirect_to = redirect_to

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return {**super().body(request_id), "redirect_browser_to": self.redirect_to}


class AALNotSatisfiedError(KratosError):
    def __init__(self, redirect_to: str) -> None:
        super().__init__(
            403,
            id="session_aal2_required",
            reason=(
                "An active session was found but it does not fulfill the requested "
                "Authenticator Assurance Level. Please verify yourself with a second "
                "factor to resolve this issue."
            ),
            message="Session does not fulfill the requested Authenticator Assurance Level",
            details={"redirect_browser_to": redirect_to},
        )
        self.redirect_to = redirect_to

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return {**super().body(request_id), "redirect_browser_to": self.redirect_to}


def not_found() -> KratosError:
    return KratosError(404, reason="Unable to locate the resource")


def no_session_whoami() -> KratosError:
    return KratosError(401, reason="No valid session credentials found in the request.")


def no_active_session() -> KratosError:
    return KratosError(
        401,
        id="session_inactive",
        reason="No active session was found in this request.",
        message="request does not have a valid authentication session",
    )


def csrf_violation() -> KratosError:
    return KratosError(
        403,
        id="security_csrf_violation",
        reason=(
            "Please retry the flow and optionally clear your cookies. The request was "
            "rejected to protect you from Cross-Site-Request-Forgery (CSRF) which could "
            "cause account takeover, leaking personal information, and other serious "
            "security issues."
        ),
        message="the request was rejected to protect you from Cross-Site-Request-Forgery",
        details={"docs": "https://www.ory.sh/kratos/docs/debug/csrf"},
    )


def bad_request(reason: str, *, id: str | None = None) -> KratosError:
    return KratosError(400, id=id, reason=reason)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.Response(body=orjson.dumps(body), status=status, headers=headers or {})
    response.headers["Content-Type"] = JSON_CONTENT_TYPE
    return response


def error_response(request: web.BaseRequest, error: KratosError) -> web.Response:
    return json_response(error.body(request.headers.get("X-Request-ID")), error.code)
