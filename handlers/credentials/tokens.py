"""The token format: pure, I/O-free, the same on every replica.

    pat_ 4Ld9Qm…(30 base62 characters)… 0a1B2c
    └─┬┘ └──────────── random ───────────┘ └─┬──┘
    prefix (kind)                        CRC32 of the random part, base62, 6 characters

30 base62 characters from ``secrets`` carry 178 bits. The checksum lets a mistyped, truncated
or made-up token be refused without a store look-up, and lets secret scanners recognise ours
with few false positives: ``(pat|key|svc)_[0-9A-Za-z]{36}`` whose last six characters are the
CRC32 of the 30 before them. Only the SHA-256 of the whole token is stored; the page shows a
*hint* (prefix + last four characters), logs show the token's id.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from proxy.kernel.digests import sha256_hex
from proxy.kernel.tokens import TokenKind

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {char: value for value, char in enumerate(BASE62)}
RANDOM_LENGTH = 30
CHECKSUM_LENGTH = 6
BODY_LENGTH = RANDOM_LENGTH + CHECKSUM_LENGTH
ID_PREFIX = "tok_"
ID_LENGTH = 16


def base62(value: int, width: int) -> str:
    """``value`` in base62, zero-padded to ``width`` digits."""
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(BASE62[digit])
    return "".join(reversed(digits))


def checksum(random_part: str) -> str:
    """The six-character base62 CRC32 of ``random_part``."""
    return base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


@dataclass(frozen=True, slots=True)
class Issued:
    """A freshly made token: the secret (shown once, never stored) and what is stored."""

    kind: TokenKind
    secret: str
    hash: str
    hint: str


def token_hash(token: str) -> str:
    """What the store keeps and caches key on: SHA-256 of the whole token, hex."""
    return sha256_hex(token.encode())


def hint_of(token: str, prefix: str) -> str:
    """Enough to recognise a token on a page, nothing to use: ``pat_…a1B2``."""
    return f"{prefix}…{token[-4:]}"


def issue(kind: TokenKind, prefixes: Mapping[str, str]) -> Issued:
    prefix = prefixes[kind]
    random_part = random_base62(RANDOM_LENGTH)
    secret = prefix + random_part + checksum(random_part)
    return Issued(kind, secret, token_hash(secret), hint_of(secret, prefix))


def new_token_id() -> str:
    """The public, non-secret name of a token (URLs, logs, headers)."""
    return ID_PREFIX + random_base62(ID_LENGTH)


def is_token_id(value: str) -> bool:
    body = value[len(ID_PREFIX) :]
    return (
        value.startswith(ID_PREFIX)
        and len(body) == ID_LENGTH
        and all(char in _DIGIT for char in body)
    )


class Format:
    """Which kind a token claims to be (its prefix) and whether it is well formed."""

    __slots__ = ("_by_prefix", "_lengths")

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self._by_prefix: dict[str, TokenKind] = {}
        for kind, prefix in prefixes.items():
            assert kind in ("pat", "key", "svc")
            self._by_prefix[prefix] = kind  # type: ignore[assignment]
        self._lengths = {len(p) for p in self._by_prefix}

    def kind_of(self, token: str) -> TokenKind | None:
        """The kind ``token``'s prefix names, whatever follows; None: not one of ours."""
        for length in self._lengths:
            kind = self._by_prefix.get(token[:length])
            if kind is not None:
                return kind
        return None

    def prefix_of(self, kind: TokenKind) -> str:
        for prefix, known in self._by_prefix.items():
            if known == kind:
                return prefix
        raise KeyError(kind)

    def well_formed(self, token: str) -> bool:
        """Prefix, 36 base62 characters, and the checksum right — no look-up needed."""
        kind = self.kind_of(token)
        if kind is None:
            return False
        body = token[len(self.prefix_of(kind)) :]
        if len(body) != BODY_LENGTH or not all(char in _DIGIT for char in body):
            return False
        return checksum(body[:RANDOM_LENGTH]) == body[RANDOM_LENGTH:]

    def scanner_regex(self) -> str:
        """The pattern secret scanners can register (the checksum is checked after it)."""
        alternatives = "|".join(sorted(p.removesuffix("_") for p in self._by_prefix))
        return rf"\b(?:{alternatives})_[0-9A-Za-z]{{{BODY_LENGTH}}}\b"
