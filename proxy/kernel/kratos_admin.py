"""The Kratos Admin API client the hooks need, and the metadata merge it writes.

``metadata_patch`` is the policy (pure): the smallest RFC 6902 document that puts the wanted
keys into ``metadata_public`` without touching any other key — the whole object when it is
null, single keys otherwise, nothing at all when the values are already there (the common
case on every login). Kratos has no ETag, so a blind full replace could erase what another
writer just added.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import ClientSession, ClientTimeout
from yarl import URL

from proxy.kernel.breaker import CircuitBreaker

JsonPatch = list[dict[str, Any]]
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def metadata_patch(current: object, wanted: Mapping[str, Any]) -> JsonPatch:
    """The JSON Patch that merges ``wanted`` into ``metadata_public`` ``current``."""
    if not isinstance(current, dict):
        return [{"op": "add", "path": "/metadata_public", "value": dict(wanted)}]
    ops: JsonPatch = []
    for key, value in wanted.items():
        if key in current and current[key] == value:
            continue
        op = "replace" if key in current else "add"
        ops.append({"op": op, "path": f"/metadata_public/{_pointer_token(key)}", "value": value})
    return ops


def merged_metadata(current: object, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata_public`` after the merge (what a pre-persist answer hands back)."""
    base = dict(current) if isinstance(current, dict) else {}
    return {**base, **wanted}


def next_page(link_header: str | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, if any."""
    for match in _NEXT_LINK.finditer(link_header or ""):
        return match.group(1)
    return None


class AdminUnavailable(Exception):
    """Kratos' Admin API failed (network, 5xx, breaker open, unexpected answer)."""


class IdentityGone(Exception):
    """Kratos does not know the identity (404)."""


class KratosAdmin:
    def __init__(
        self,
        session: ClientSession,
        admin_url: str,
        *,
        token: str = "",
        timeout: float = 1.0,
        breaker: CircuitBreaker,
    ) -> None:
        self.session = session
        self.base = URL(admin_url.rstrip("/"))
        self.breaker = breaker
        self.timeout = ClientTimeout(total=timeout)
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def _identity_url(self, identity_id: str) -> URL:
        return self.base.join(URL(f"/admin/identities/{quote(identity_id, safe='')}", encoded=True))

    async def _call(
        self, method: str, url: URL, body: bytes | None = None
    ) -> tuple[int, Any, str | None]:
        """(status, decoded JSON or None, Link header); failures feed the breaker."""
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        status, answer_headers, raw = await self.breaker.request(
            lambda: self.session.request(
                method, url, data=body, headers=headers, timeout=self.timeout
            ),
            AdminUnavailable,
        )
        link = answer_headers.get("Link")
        try:
            document = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise AdminUnavailable("invalid JSON from Kratos") from exc
        return status, document, link

    async def get_identity(self, identity_id: str) -> dict[str, Any]:
        status, document, _ = await self._call("GET", self._identity_url(identity_id))
        if status == 404:
            raise IdentityGone("HTTP 404")  # never the id: messages end up in logs
        if status != 200 or not isinstance(document, dict):
            raise AdminUnavailable(f"HTTP {status}")
        return document

    async def patch_identity(self, identity_id: str, patch: JsonPatch) -> dict[str, Any]:
        status, document, _ = await self._call(
            "PATCH", self._identity_url(identity_id), orjson.dumps(patch)
        )
        if status == 404:
            raise IdentityGone("HTTP 404")  # never the id: messages end up in logs
        if status != 200 or not isinstance(document, dict):
            raise AdminUnavailable(f"HTTP {status}")
        return document

    async def identities(self, page_size: int = 250) -> AsyncIterator[list[dict[str, Any]]]:
        """Every identity, page by page, following ``Link: rel="next"`` (keyset)."""
        url: URL | None = self.base.join(URL("/admin/identities")).with_query(
            page_size=str(page_size)
        )
        while url is not None:
            status, document, link = await self._call("GET", url)
            if status != 200 or not isinstance(document, list):
                raise AdminUnavailable(f"HTTP {status}")
            yield [item for item in document if isinstance(item, dict)]
            target = next_page(link)
            # Only the path and query: Kratos builds the link from its own idea of its URL.
            url = self.base.join(URL(target).relative()) if target else None
