"""Masking the secret inside a value that is not secret as a whole: a URL with credentials.

``KRATOS_ADMIN_URL=https://admin:pw@kratos`` or a ``redis://:pw@host`` quoted in a driver's
error message must not reach ``config check``, an error line or a log line with its password.
The user name stays readable; a user-less userinfo (often a token) is masked whole.
"""

from __future__ import annotations

import re

# scheme://userinfo@ — userinfo stops at anything that cannot be in it, so a match never runs
# across a path, a quote or a JSON field boundary.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@\"'\\<>]*)@")


def _masked(match: re.Match[str]) -> str:
    user, colon, _ = match.group(2).partition(":")
    return f"{match.group(1)}{user}:***@" if colon else f"{match.group(1)}***@"


def mask_url_credentials(text: str) -> str:
    """``text`` with the password (or token) of every ``scheme://user:password@`` replaced."""
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(_masked, text)
