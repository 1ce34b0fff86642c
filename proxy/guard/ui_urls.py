"""Where a blocked browser is sent: each flow kind's UI, configured or learned from Kratos."""

from __future__ import annotations

from collections.abc import Mapping

from proxy.guard.classify import back_to_flow


class UiUrls:
    """The login / registration / recovery / verification UIs. A configured one wins; else
    the one Kratos was last seen sending a browser back to (its redirect to the same flow)."""

    def __init__(self, configured: Mapping[str, str]) -> None:
        self._configured = dict(configured)
        self._learned: dict[str, str] = {}

    def get(self, kind: str) -> str | None:
        return self._configured.get(kind) or self._learned.get(kind)

    def learn(self, kind: str, location: str | None, flow_id: str) -> None:
        """Kratos sent a browser back to this flow's UI: that is the UI's address."""
        if kind not in self._configured and (ui := back_to_flow(location, flow_id)):
            self._learned[kind] = ui
