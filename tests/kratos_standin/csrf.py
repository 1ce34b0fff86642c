"""Anti-CSRF tokens the way nosurf (Kratos' CSRF library) makes them.

The cookie holds the raw 32-byte token; forms carry it masked with a fresh
one-time pad (pad || pad XOR token), so every flow shows a different string
that still verifies against the same cookie.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets

TOKEN_LENGTH = 32
COOKIE_MAX_AGE = 365 * 24 * 60 * 60


def new_token() -> bytes:
    return secrets.token_bytes(TOKEN_LENGTH)


def encode_cookie(token: bytes) -> str:
    return base64.b64encode(token).decode()


def _b64decode(value: str) -> bytes | None:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_cookie(value: str | None) -> bytes | None:
    raw = _b64decode(value) if value else None
    return raw if raw is not None and len(raw) == TOKEN_LENGTH else None


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def mask(token: bytes) -> str:
    pad = secrets.token_bytes(TOKEN_LENGTH)
    return base64.b64encode(pad + _xor(pad, token)).decode()


def verify(real: bytes | None, sent: str | None) -> bool:
    if real is None or not sent:
        return False
    raw = _b64decode(sent)
    if raw is None:
        return False
    if len(raw) == 2 * TOKEN_LENGTH:
        raw = _xor(raw[:TOKEN_LENGTH], raw[TOKEN_LENGTH:])
    return len(raw) == TOKEN_LENGTH and hmac.compare_digest(raw, real)
