"""Who an attempt is about: the normalised identifier, the client's address group, and the
keyed hashes that name their buckets. Pure functions, no I/O.

Identifiers are never stored or logged in clear: a bucket is named by an HMAC of the
normalised identifier under ``BACKOFF_SECRET``, so a dump of Redis reveals no account names
and cannot be reversed by hashing a list of guesses without the secret.
"""

from __future__ import annotations

import ipaddress
import secrets
import unicodedata

from proxy.digests import Hmac

# Ordinary login identifiers are short; a longer one is hashed as is, truncated, so a
# megabyte "identifier" costs no more than a normal one.
MAX_IDENTIFIER = 512


def normalise_identifier(raw: str) -> str:
    """``Alice@Example.com``, `` alice@example.com`` and full-width forms are one account.

    NFKC folds compatibility forms (full-width letters, ligatures), casefold is the Unicode
    case-insensitive comparison (``ß`` → ``ss``); NFKC again because casefolding can
    produce sequences that compose differently.
    """
    text = unicodedata.normalize("NFKC", raw[:MAX_IDENTIFIER]).strip()
    return unicodedata.normalize("NFKC", text.casefold()).strip()


def address_group(ip: str) -> str:
    """The unit an address is judged as: IPv4 itself, IPv6 per /64 (one subscriber's prefix)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # a unix socket or test transport: the peer text is the best we have
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# Made at import, before ``WORKERS`` forks: the workers of one server share it (replicas and
# restarts do not — that is what ``BACKOFF_SECRET`` is for).
PROCESS_SECRET = secrets.token_hex(32)


class Keyer:
    """Names buckets with an HMAC under the server secret (hex, 128 bits)."""

    def __init__(self, secret: str) -> None:
        self._hmac = Hmac(secret.encode())

    def _mac(self, kind: str, value: str) -> str:
        return self._hmac.hex(f"{kind}\x00{value}".encode())[:32]

    def identifier(self, normalised: str) -> str:
        return self._mac("identifier", normalised)

    def address(self, group: str) -> str:
        return self._mac("address", group)

    def subject(self, kind: str, value: str) -> str:
        """Attempts not keyed by an identifier (a second factor): by session or flow."""
        return self._mac(kind, value)
