"""Where a blocked browser is sent: each flow kind's UI, configured or learned from Kratos."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from proxy.guard.classify import back_to_flow
from proxy.kernel.canonical import canonical_uuid, query_get


class UiUrls:
    """The login / registration / recovery / verification UIs. A configured one wins; else
    the one Kratos was last seen sending a browser back to (its redirect to the same flow)."""

    def __init__(self, configured: Mapping[str, str]) -> None:
        self._configured = dict(configured)
        self._learned: dict[str, str] = {}

    def get(self, kind: str) -> str | None:
        return self._configured.get(kind) or self._learned.get(kind)

    def learn_from_init(self, kind: str, location: str | None) -> str | None:
        """Kratos answered a new browser flow of ``kind`` with a redirect to its UI
        (``<ui>?flow=<new id>``): learn that UI; None when the redirect is something else
        (an already signed-in caller goes to its return URL, which names no flow)."""
        if kind in self._configured or not location:
            return self.get(kind)
        if not canonical_uuid(query_get(urlsplit(location).query, "flow")):
            return None
        self._learned[kind] = location.partition("?")[0]
        return self._learned[kind]

    def learn(self, kind: str, location: str | None, flow_id: str) -> None:
        """Kratos sent a browser back to this flow's UI: that is the UI's address."""
        if kind not in self._configured and (ui := back_to_flow(location, flow_id)):
            self._learned[kind] = ui
