"""Resolve an identity and bring its ``metadata_public`` up to date: the one procedure the
identity hook, the outbox relay and ``reconcile identities`` all run.

An identity Kratos has not persisted yet (the nil UUID, see ``lookup``) is never resolved,
read or patched by id: ``plan`` answers ``not_persisted`` for it, which the relay treats as
done; the pre-persist hook asks ``plan_unpersisted``, which goes by the configured trait.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from handlers.hooks.lookup import is_nil
from handlers.hooks.resolvers import Resolved, ResolverChain, TraitLookup
from proxy.kernel.kratos_admin import JsonPatch, KratosAdmin, merged_metadata, metadata_patch

SyncOutcome = Literal["patched", "unchanged", "not_found", "would_patch", "not_persisted"]


@dataclass(frozen=True, slots=True)
class SyncResult:
    outcome: SyncOutcome
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
    def __init__(
        self,
        chain: ResolverChain,
        admin: KratosAdmin,
        keys: MetadataKeys,
        by_trait: TraitLookup | None = None,
    ) -> None:
        self.chain = chain
        self.admin = admin
        self.keys = keys
        self.by_trait = by_trait

    async def close(self) -> None:
        """The resolvers' pools (the Admin API session belongs to its cleanup_ctx)."""
        await self.chain.close()
        if self.by_trait is not None:
            await self.by_trait.close()

    def merge(self, resolved: Resolved, current: Any) -> SyncResult:
        """What writing ``resolved`` into ``current`` metadata_public would change (pure)."""
        wanted = self.keys.wanted(resolved)
        patch = metadata_patch(current, wanted)
        merged = merged_metadata(current, wanted)
        return SyncResult("would_patch" if patch else "unchanged", patch, merged)

    async def plan_unpersisted(self, identity: dict[str, Any]) -> SyncResult:
        """The merge for an identity Kratos has not stored yet, found by its trait; nothing
        is read from or written to Kratos. Raises ``ResolutionFailed``."""
        if self.by_trait is None:
            return SyncResult("not_persisted")
        resolved = await self.by_trait.resolve(identity)
        if resolved is None:
            return SyncResult("not_found")
        return self.merge(resolved, identity.get("metadata_public"))

    async def plan(
        self, identity_id: str, identity: dict[str, Any] | None
    ) -> tuple[SyncResult, dict[str, Any] | None]:
        """What would change, without writing; reads Kratos only when ``identity`` lacks
        ``metadata_public``. Raises ``ResolutionFailed`` / ``AdminUnavailable``."""
        if is_nil(identity_id):
            return SyncResult("not_persisted"), identity
        resolved = await self.chain.resolve(identity_id)
        if resolved is None:
            return SyncResult("not_found"), identity
        if identity is None or "metadata_public" not in identity:
            identity = await self.admin.get_identity(identity_id)
        return self.merge(resolved, identity.get("metadata_public")), identity

    async def run(
        self, identity_id: str, identity: dict[str, Any] | None = None, *, write: bool = True
    ) -> SyncResult:
        planned, _ = await self.plan(identity_id, identity)
        if planned.outcome != "would_patch" or not write:
            return planned
        await self.admin.patch_identity(identity_id, planned.patch)
        return SyncResult("patched", planned.patch, planned.metadata_public)
