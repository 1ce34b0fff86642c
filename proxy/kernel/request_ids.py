"""Request ids, one rule for both listeners (the middleware's and the wire path's).

A caller's ``X-Request-ID`` is kept when it is a sane token (``SANE``); otherwise a fresh id
is a random per-process prefix and a counter — unique across replicas and restarts, with no
system call per request. The login guard's attempt tokens are made the same way.
"""

from __future__ import annotations

import itertools
import os
import re

_PATTERN = r"[A-Za-z0-9._:\-]{1,128}"
SANE = re.compile(_PATTERN)
SANE_BYTES = re.compile(_PATTERN.encode())

_PREFIX = os.urandom(6).hex()
_PREFIX_BYTES = _PREFIX.encode()
_COUNTER = itertools.count(1)


def fresh() -> str:
    return f"{_PREFIX}{next(_COUNTER):010x}"


def fresh_bytes() -> bytes:
    return b"%s%010x" % (_PREFIX_BYTES, next(_COUNTER))
