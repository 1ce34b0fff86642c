"""An aiohttp stand-in for Ory Kratos' public and admin APIs, for tests and demos."""

from .admin import create_admin_app
from .public import create_public_app
from .schema import SchemaMismatchError, validate
from .state import (
    AuthMethod,
    LoginFlow,
    PasswordCredential,
    RecordedRequest,
    SelfServiceFlow,
    SessionRecord,
    StandinState,
)

__all__ = [
    "AuthMethod",
    "LoginFlow",
    "PasswordCredential",
    "RecordedRequest",
    "SchemaMismatchError",
    "SelfServiceFlow",
    "SessionRecord",
    "StandinState",
    "create_admin_app",
    "create_public_app",
    "validate",
]
