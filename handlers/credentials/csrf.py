"""CSRF protection of the token page and of cookie-authenticated JSON calls: pure.

The synchronizer token is bound to the Kratos session: an HMAC of the session's id under a
key every replica shares (``TOKENS_CSRF_SECRET``, else one derived from ``BACKOFF_SECRET``,
else a random key per process — forms then work only on the replica that served them, which
start-up says). It is put in every form and sent back in the form or the ``X-CSRF-Token``
header; another site cannot read it, and it dies with the session. Two more checks catch a
cross-site post before the token is even compared: a browser's ``Sec-Fetch-Site`` must say
``same-origin`` (or ``none``: typed in); a client that sends no ``Sec-Fetch-Site`` must send
no ``Origin`` or the page's own.
Kratos' session cookie is ``SameSite=Lax`` by default, so a cross-site POST does not carry
it in the first place.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

from proxy.kernel.digests import Hmac

PROCESS_KEY = secrets.token_bytes(32)


def csrf_key(csrf_secret: str, backoff_secret: str) -> tuple[bytes, bool]:
    """The key, and whether every replica shares it."""
    if csrf_secret:
        return csrf_secret.encode(), True
    if backoff_secret:
        return Hmac(backoff_secret.encode()).hex(b"kratos-hooks tokens csrf").encode(), True
    return PROCESS_KEY, False


class Csrf:
    def __init__(self, key: bytes) -> None:
        self._mac = Hmac(key)

    def token(self, session_id: str) -> str:
        return self._mac.hex(b"csrf:" + session_id.encode())

    def valid(self, session_id: str, presented: str) -> bool:
        return bool(session_id) and hmac.compare_digest(
            self.token(session_id).encode(), presented.strip().encode()
        )


def cross_site(headers: Mapping[str, str]) -> bool:
    """Whether a state-changing request visibly comes from another site."""
    site = headers.get("Sec-Fetch-Site", "").lower()
    if site:  # the browser's own word (an Origin may be "null" under a strict referrer policy)
        return site not in {"same-origin", "none"}
    origin = headers.get("Origin", "")
    if origin and origin != "null":
        host = origin.partition("://")[2]
        return host.lower() != headers.get("Host", "").lower()
    return origin == "null"
