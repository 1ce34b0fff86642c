"""The credentials feature of one process: the store, the verifier the decisions ask, and the
operations the token page, the JSON and admin APIs, the leak endpoint and the CLI share.

Made once per process by the composition root (``Shared``) — both listeners use it: the
decisions on the internal one, the token page and leak reports on the public one. Opening
the store is lazy (the service starts while the database is down; token rules answer 503
meanwhile); ``context`` runs the background work (revocations from other replicas, batched
``last_used_at``, expiry notices) on the internal app and flushes what is pending at shutdown;
``close`` ends the store and the Kratos admin pool after both listeners drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from aiohttp import ClientSession, web

from config.settings import Settings
from handlers.credentials.catalogue import load_catalogue
from handlers.credentials.credential_metrics import (
    EXPIRY_NOTICES,
    ISSUED,
    LEAK_REPORTS,
    REVOCATIONS,
)
from handlers.credentials.last_used import LastUsed
from handlers.credentials.limits import FailureGate, TokenRates
from handlers.credentials.owners import Owners
from handlers.credentials.revocation import Revocations
from handlers.credentials.scopes import DEFAULT_CATALOGUE, Catalogue
from handlers.credentials.store import (
    AuditAction,
    AuditEntry,
    StoreUnavailable,
    TokenRecord,
    TokenStore,
)
from handlers.credentials.store_pg import PostgresStore
from handlers.credentials.store_sqlite import SqliteStore, default_path
from handlers.credentials.token_cache import TokenCache
from handlers.credentials.tokens import Format, issue, new_token_id, token_hash
from handlers.credentials.verifier import Verifier
from proxy.kernel.bus import Bus, TokenNotice
from proxy.kernel.http_clients import api_session, breaker
from proxy.kernel.kratos_admin import KratosAdmin
from proxy.kernel.redis import RedisClient
from proxy.kernel.tokens import TokenKind

log = logging.getLogger("kratos_hooks.credentials")
DAY = 86400.0


def make_store(settings: Settings) -> TokenStore:
    tokens = settings.tokens
    if settings.store.database_url:
        return PostgresStore(
            settings.store.database_url,
            schema=tokens.database_schema,
            timeout=tokens.store_timeout,
            migrate=settings.store.migrate,
        )
    return SqliteStore(tokens.sqlite_file or default_path(settings.store.spool_dir))


@dataclass(frozen=True, slots=True)
class Made:
    """A token just issued: the secret (shown once, then gone) and what was stored."""

    secret: str
    record: TokenRecord


@dataclass(frozen=True, slots=True)
class LeakResult:
    result: str  # revoked | inactive | unknown | malformed
    token_id: str = ""

    @property
    def active(self) -> bool:
        """Whether the token was usable when it was reported (it is revoked now)."""
        return self.result == "revoked"


class Credentials:
    def __init__(
        self,
        settings: Settings,
        redis: RedisClient | None,
        bus: Bus,
        store: TokenStore | None = None,
    ) -> None:
        tokens = settings.tokens
        prefix = settings.store.redis_key_prefix
        self.settings = settings
        self.config = tokens
        self.bus = bus
        # The built-in catalogue until ``prepare`` has read TOKENS_SCOPES_FILE (before either
        # listener accepts: it is the public app's first cleanup_ctx).
        catalogue = DEFAULT_CATALOGUE
        self._prepared = asyncio.Lock()
        self._catalogue_loaded = not tokens.scopes_file
        self.format = Format(tokens.prefixes)
        self.store = store or make_store(settings)
        self.cache = TokenCache(
            redis,
            prefix=prefix,
            ttl=tokens.cache_ttl,
            size=tokens.cache_size,
            negative_ttl=tokens.negative_cache_ttl,
            negative_size=tokens.negative_cache_size,
            catalogue=catalogue,
        )
        self._admin_http: ClientSession | None = None
        self._admin: KratosAdmin | None = None
        self.owners = Owners(self.kratos_admin, settings.decisions.roles_path, tokens.cache_ttl)
        self.last_used = LastUsed(self.store, tokens.last_used_interval)
        self.verifier = Verifier(
            self.format,
            self.store,
            self.cache,
            self.owners,
            self.last_used,
            FailureGate(redis, prefix, limit=tokens.failure_limit, length=tokens.failure_window),
            TokenRates(redis, prefix),
        )
        self.revocations = Revocations(
            self.cache,
            self.store,
            redis=redis,
            prefix=prefix,
            poll=tokens.revocation_poll,
            dsn=settings.store.database_url,
            schema=tokens.database_schema,
            timeout=tokens.store_timeout,
        )

    def kratos_admin(self) -> KratosAdmin:
        """Kratos' admin API (a PAT's owner), its pool made on first use."""
        if self._admin is None:
            settings = self.settings
            self._admin_http = api_session(settings)
            self._admin = KratosAdmin(
                self._admin_http,
                settings.kratos.admin_url,
                token=settings.kratos.admin_token,
                timeout=settings.hooks.http_timeout,
                breaker=breaker(settings, "tokens_kratos_admin"),
            )
        return self._admin

    @property
    def catalogue(self) -> Catalogue:
        return self.cache.catalogue

    async def prepare(self) -> None:
        """Read the scope catalogue file (once, off the event loop); a broken one is a
        ``ConfigError`` that stops start-up."""
        if self._catalogue_loaded:
            return
        async with self._prepared:
            if not self._catalogue_loaded:
                path = self.config.scopes_file
                loaded = await asyncio.get_running_loop().run_in_executor(
                    None, load_catalogue, path
                )
                self.cache.catalogue = loaded
                self._catalogue_loaded = True

    async def prepared(self, app: web.Application) -> AsyncIterator[None]:
        """``prepare`` as a ``cleanup_ctx``."""
        await self.prepare()
        yield

    # --- lifecycle -------------------------------------------------------------------------
    async def context(self, app: web.Application) -> AsyncIterator[None]:
        """The internal app's ``cleanup_ctx``: background work while it runs."""
        self._announce()
        tasks = [
            asyncio.create_task(self.revocations.run(), name="tokens-revocations"),
            asyncio.create_task(self.last_used.run(), name="tokens-last-used"),
        ]
        if self.config.expiry_warning_days:
            tasks.append(asyncio.create_task(self._expiry_loop(), name="tokens-expiry"))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.last_used.flush(everything=True)

    def _announce(self) -> None:
        if self.store.backend == "sqlite":
            assert isinstance(self.store, SqliteStore)
            log.warning(
                "DATABASE_URL is not set: tokens are kept in the embedded SQLite file %s "
                "(this host only)",
                self.store.path,
            )
        log.info(
            "tokens enabled",
            extra={"store": self.store.backend, "revocations_via": self.revocations.mode},
        )

    async def close(self) -> None:
        await self.store.close()
        if self._admin_http is not None:
            await self._admin_http.close()

    # --- operations ------------------------------------------------------------------------
    async def issue(
        self,
        kind: TokenKind,
        *,
        owner: str,
        name: str,
        scopes: Sequence[str],
        expires_at: float | None,
        created_by: str,
        origin: str,
        rate_limit: int = 0,
    ) -> Made:
        made = issue(kind, self.config.prefixes)
        record = TokenRecord(
            id=new_token_id(),
            kind=kind,
            token_hash=made.hash,
            hint=made.hint,
            owner=owner,
            name=name,
            scopes=tuple(scopes),
            created_at=time.time(),
            created_by=created_by,
            expires_at=expires_at,
            rate_limit=rate_limit,
        )
        await self.store.insert(
            record, AuditEntry(record.id, "create", created_by, {"origin": origin})
        )
        self.cache.negative.discard(made.hash)
        ISSUED.labels(kind, origin).inc()
        log.info("token issued", extra={"token_id": record.id, "kind": kind, "origin": origin})
        return Made(made.secret, record)

    async def revoke(
        self, token_id: str, *, by: str, reason: str = "revoked", action: AuditAction = "revoke"
    ) -> TokenRecord | None:
        """Revoke and tell every replica; None when unknown or already revoked."""
        revoked = await self.store.revoke(
            token_id, by=by, reason=reason, at=time.time(), action=action
        )
        if revoked is not None:
            await self.revocations.announce([revoked.token_hash])
            REVOCATIONS.labels(reason if reason in {"leaked", "regenerated"} else "revoked").inc()
            log.info("token revoked", extra={"token_id": token_id, "reason": reason})
        return revoked

    async def regenerate(self, token_id: str, *, by: str, origin: str) -> Made | None:
        """A new secret with the same settings; the old token revoked in the same write."""
        old = await self.store.by_id(token_id)
        if old is None or old.revoked_at is not None:
            return None
        made = issue(old.kind, self.config.prefixes)
        now = time.time()
        lifetime = None if old.expires_at is None else max(DAY, old.expires_at - old.created_at)
        new = TokenRecord(
            id=new_token_id(),
            kind=old.kind,
            token_hash=made.hash,
            hint=made.hint,
            owner=old.owner,
            name=old.name,
            scopes=old.scopes,
            created_at=now,
            created_by=by,
            expires_at=None if lifetime is None else now + lifetime,
            rate_limit=old.rate_limit,
        )
        if await self.store.replace(token_id, new, by=by) is None:
            return None
        await self.revocations.announce([old.token_hash])
        REVOCATIONS.labels("regenerated").inc()
        ISSUED.labels(new.kind, origin).inc()
        log.info("token regenerated", extra={"token_id": token_id, "new_token_id": new.id})
        return Made(made.secret, new)

    async def leak(self, candidates: Sequence[str], source: str) -> list[LeakResult]:
        """Revoke every well-formed, active token among ``candidates`` and tell its owner."""
        results = []
        for candidate in candidates:
            result = await self._leak_one(candidate.strip(), source)
            LEAK_REPORTS.labels(result.result).inc()
            results.append(result)
        return results

    async def _leak_one(self, candidate: str, source: str) -> LeakResult:
        if not self.format.well_formed(candidate):
            return LeakResult("malformed")
        record = await self.store.by_hash(token_hash(candidate))
        if record is None:
            return LeakResult("unknown")
        if not record.active(time.time()):
            await self.store.audit(AuditEntry(record.id, "leak_report", source, {"active": False}))
            return LeakResult("inactive", record.id)
        revoked = await self.revoke(record.id, by=source, reason="leaked", action="leak_report")
        if revoked is None:  # revoked by someone else a moment ago
            return LeakResult("inactive", record.id)
        log.warning("leaked token revoked", extra={"token_id": record.id, "source": source})
        notice = _notice("leaked", revoked, revoked.revoked_at or time.time(), source)
        if not await self.bus.publish(notice):
            log.error("leaked token's owner not notified", extra={"token_id": record.id})
        return LeakResult("revoked", record.id)

    # --- expiry ----------------------------------------------------------------------------
    async def _expiry_loop(self) -> None:
        # The first pass waits a little: a service that stops at once never opens the store.
        await asyncio.sleep(min(30.0, self.config.expiry_check_interval))
        while True:
            try:
                await self.expiry_pass()
            except StoreUnavailable as exc:
                log.warning("expiry pass skipped", extra={"error": str(exc)})
            await asyncio.sleep(self.config.expiry_check_interval)

    async def expiry_pass(self, now: float | None = None) -> int:
        """Notice tokens expiring within TOKENS_EXPIRY_WARNING_DAYS (once each) and audit the
        ones that expired; how many notices were sent."""
        now = time.time() if now is None else now
        for record in await self.store.note_expired(now):
            log.info("token expired", extra={"token_id": record.id})
        horizon = now + self.config.expiry_warning_days * DAY
        sent = 0
        for record in await self.store.claim_expiring(now, horizon):
            if await self.bus.publish(_notice("expiring", record, now)):
                EXPIRY_NOTICES.labels("sent").inc()
                sent += 1
            else:
                EXPIRY_NOTICES.labels("failed").inc()
                await self.store.unclaim_expiring(record.id)  # the next pass tries again
        return sent


def _notice(event: str, record: TokenRecord, at: float, source: str = "") -> TokenNotice:
    return TokenNotice(
        event="leaked" if event == "leaked" else "expiring",
        token_id=record.id,
        kind=record.kind,
        owner=record.owner,
        name=record.name,
        hint=record.hint,
        scopes=record.scopes,
        expires_at=record.expires_at,
        at=at,
        source=source,
    )
