"""TEMPORARY stub of P1's proxy/canonical.py (not committed)."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl, unquote

_ESC = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _clean(p: str) -> str:
    rooted = p.startswith("/")
    out: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(seg)
    s = "/".join(out)
    return ("/" + s) if rooted else (s or ".")


def canonical_path(raw_path: str) -> str | None:
    if _ESC.search(raw_path):
        return None
    return _clean(unquote(raw_path, errors="surrogateescape"))


def route_key(path: str) -> str:
    key = path.lower()
    return key[:-1] if len(key) > 1 and key.endswith("/") else key


def query_get(raw_query: str, name: str) -> str:
    for k, v in parse_qsl(raw_query, keep_blank_values=True):
        if k == name:
            return v
    return ""


def canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
