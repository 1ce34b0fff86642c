"""The service's exceptions and the one JSON error shape they render to.

    KratosHooksError                 status  error id
     ├── UpstreamError
     │    ├── UpstreamUnavailable     502    upstream_unavailable  (connect refused, reset)
     │    └── UpstreamTimeout         504    upstream_timeout
     ├── RequestError
     │    ├── BadRequest              400    bad_request
     │    ├── Unauthorized            401    unauthorized
     │    ├── NotFound                404    not_found
     │    ├── MethodNotAllowed        405    method_not_allowed
     │    └── BodyTooLarge            413    request_too_large
     ├── ClientGone                  499    client_closed_request (nginx's convention)
     └── DependencyUnavailable       503    dependency_unavailable

Bodies use Kratos' error shape (``{"error": {"id", "code", "status", "request", "reason",
"message"}}``) so Ory SDKs and UIs behind the proxy render our errors like Kratos' own.
Reasons are written for the caller: they never carry internals, addresses or secrets.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

import orjson


class KratosHooksError(Exception):
    status: ClassVar[int] = 500
    error_id: ClassVar[str] = "internal_server_error"
    message: ClassVar[str] = "An internal error occurred"

    def __init__(
        self,
        reason: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason or self.message)
        self.reason = reason or self.message
        self.details = details
        self.headers = headers or {}


class UpstreamError(KratosHooksError):
    pass


class UpstreamUnavailable(UpstreamError):
    status = 502
    error_id = "upstream_unavailable"
    message = "The identity service could not be reached"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_id = "upstream_timeout"
    message = "The identity service did not answer in time"


class RequestError(KratosHooksError):
    status = 400
    error_id = "bad_request"
    message = "The request was malformed or contained invalid parameters"


class BadRequest(RequestError):
    pass


class Unauthorized(RequestError):
    status = 401
    error_id = "unauthorized"
    message = "The request could not be authorized"


class NotFound(RequestError):
    status = 404
    error_id = "not_found"
    message = "The requested resource could not be found"


class MethodNotAllowed(RequestError):
    status = 405
    error_id = "method_not_allowed"
    message = "The method is not allowed for this resource"


class BodyTooLarge(RequestError):
    status = 413
    error_id = "request_too_large"
    message = "The request body is too large"


class ClientGone(KratosHooksError):
    """The client closed its connection before the answer; nothing will be read."""

    status = 499
    error_id = "client_closed_request"
    message = "The client closed the connection"


class DependencyUnavailable(KratosHooksError):
    status = 503
    error_id = "dependency_unavailable"
    message = "A required service is unavailable"


def error_document(
    status: int,
    *,
    error_id: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    request_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Kratos' ``errorGeneric`` body for ``status``."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    error: dict[str, Any] = {"code": status, "status": phrase, "message": message or phrase}
    if error_id:
        error["id"] = error_id
    if reason:
        error["reason"] = reason
    if request_id:
        error["request"] = request_id
    if details:
        error["details"] = details
    return {"error": error}


def render(exc: KratosHooksError, request_id: str | None) -> bytes:
    return orjson.dumps(
        error_document(
            exc.status,
            error_id=exc.error_id,
            reason=exc.reason,
            message=exc.message,
            request_id=request_id,
            details=exc.details,
        )
    )
