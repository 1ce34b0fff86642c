"""The one gate of every internal hook endpoint (``/hooks/kratos/*``, the Kratos web hooks and
the login backoff's compatibility endpoints alike): authentication matching what Kratos'
``web_hook`` ``auth`` can send, then the body, bounded by ``HOOKS_MAX_BODY_SIZE``.

Kratos sends either an ``api_key`` in a header of the configured name or HTTP basic auth.
Several values are accepted at once so keys can be rotated without a flag day. Every
configured value is compared, in constant time, whatever matched first: the time an answer
takes reveals neither which key nor how much of it was right.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from config.hooks import HooksSettings
from proxy.kernel.bodies import read_bounded
from proxy.kernel.errors import KratosHooksError, Unauthorized

GateVerdict = Literal["ok", "unauthorized", "not_configured", "insecure"]
ENABLING_SETTINGS = "HOOKS_API_KEYS or HOOKS_BASIC_AUTH"


@dataclass(frozen=True, slots=True)
class Credentials:
    header: str
    api_keys: tuple[bytes, ...]
    basic: tuple[bytes, ...]
    insecure: bool

    @classmethod
    def from_settings(cls, hooks: HooksSettings) -> Credentials:
        return cls(
            header=hooks.api_key_header,
            api_keys=tuple(k.encode() for k in hooks.api_keys if k),
            basic=tuple(pair.encode() for pair in hooks.basic_auth if ":" in pair),
            insecure=hooks.insecure_no_auth,
        )

    @property
    def configured(self) -> bool:
        return bool(self.api_keys or self.basic)


def _any_equal(candidate: bytes, accepted: tuple[bytes, ...]) -> bool:
    matched = False
    for value in accepted:
        # No short-circuit: every accepted value costs one comparison, match or not.
        matched |= hmac.compare_digest(candidate, value)
    return matched


def _basic_pair(authorization: str) -> bytes | None:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def check(credentials: Credentials, headers: Mapping[str, str]) -> GateVerdict:
    """The verdict for a call carrying ``headers``."""
    if not credentials.configured:
        return "insecure" if credentials.insecure else "not_configured"
    ok = False
    if credentials.api_keys:
        # The header's own bytes: aiohttp hands non-UTF-8 bytes over as surrogate escapes,
        # which a strict encode refuses (a key ending in 0xFF was a 500, not a 401).
        sent = headers.get(credentials.header, "").encode("utf-8", "surrogateescape")
        ok |= _any_equal(sent, credentials.api_keys)
    if credentials.basic:
        pair = _basic_pair(headers.get("Authorization", ""))
        ok |= pair is not None and _any_equal(pair, credentials.basic)
    return "ok" if ok else "unauthorized"


class HookNotConfigured(KratosHooksError):
    status = 503
    error_id = "hook_not_configured"
    message = "This hook is not enabled"


@dataclass(frozen=True, slots=True)
class HookGate:
    credentials: Credentials
    max_body: int

    @classmethod
    def from_settings(cls, hooks: HooksSettings) -> HookGate:
        return cls(Credentials.from_settings(hooks), hooks.max_body_size)

    async def body(self, request: web.Request) -> bytes:
        """The body of a call, once its credentials are checked: 503 naming the settings
        while none is configured (unless ``HOOKS_INSECURE_NO_AUTH``), 401 on a bad one, 413
        past the bound."""
        verdict = check(self.credentials, request.headers)
        if verdict == "not_configured":
            raise HookNotConfigured(f"Set {ENABLING_SETTINGS} to enable the Kratos hooks")
        if verdict == "unauthorized":
            raise Unauthorized("Missing or invalid hook credentials")
        return await read_bounded(request, self.max_body)
