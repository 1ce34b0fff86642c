"""Resolve an identity and bring its ``metadata_public`` up to date: the one procedure the
identity hook, the outbox relay and ``reconcile identities`` all run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from handlers.hooks.kratos_admin import JsonPatch, KratosAdmin, merged_metadata, metadata_patch
from handlers.hooks.resolvers import Resolved, ResolverChain

Outcome = Literal["patched", "unchanged", "not_found", "would_patch"]


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: Outcome
    patch: JsonPatch = field(default_factory=list)
    metadata_public: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MetadataKeys:
    user: str
    agent: str

    def wanted(self, resolved: Resolved) -> dict[str, str]:
        values = {self.user: resolved.user_id}
        if resolved.agent_id:
            values[self.agent] = resolved.agent_id
        return values


class IdentitySync:
    def __init__(self, chain: ResolverChain, admin: KratosAdmin, keys: MetadataKeys) -> None:
        self.chain = chain
        self.admin = admin
        self.keys = keys

    async def plan(
        self, identity_id: str, identity: dict[str, Any] | None
    ) -> tuple[SyncResult, dict[str, Any] | None]:
        """What would change, without writing; reads Kratos only when ``identity`` lacks
        ``metadata_public``. Raises ``ResolutionFailed`` / ``AdminUnavailable``."""
        resolved = await self.chain.resolve(identity_id)
        if resolved is None:
            return SyncResult("not_found"), identity
        if identity is None or "metadata_public" not in identity:
            identity = await self.admin.get_identity(identity_id)
        current = identity.get("metadata_public")
        wanted = self.keys.wanted(resolved)
        patch = metadata_patch(current, wanted)
        merged = merged_metadata(current, wanted)
        return SyncResult("would_patch" if patch else "unchanged", patch, merged), identity

    async def run(
        self, identity_id: str, identity: dict[str, Any] | None = None, *, write: bool = True
    ) -> SyncResult:
        planned, _ = await self.plan(identity_id, identity)
        if planned.outcome != "would_patch" or not write:
            return planned
        await self.admin.patch_identity(identity_id, planned.patch)
        return SyncResult("patched", planned.patch, planned.metadata_public)
