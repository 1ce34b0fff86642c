"""The store contract, run against Postgres and the embedded SQLite file alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from handlers.credentials.store import AuditEntry, StoreUnavailable, TokenRecord, TokenStore, Use
from handlers.credentials.tokens import issue, new_token_id

PREFIXES = {"pat": "pat_", "key": "key_", "svc": "svc_"}


def record(
    kind: str = "pat", owner: str = "identity-1", *, expires_in: float | None = 86400, **kw: object
) -> tuple[str, TokenRecord]:
    made = issue(kind, PREFIXES)  # type: ignore[arg-type]
    now = time.time()
    rec = TokenRecord(
        id=new_token_id(),
        kind=made.kind,
        token_hash=made.hash,
        hint=made.hint,
        owner=owner,
        name=str(kw.pop("name", "CLI")),
        scopes=tuple(kw.pop("scopes", ("read:users", "write:resources"))),  # type: ignore[arg-type]
        created_at=float(kw.pop("created_at", now)),  # type: ignore[arg-type]
        created_by=owner,
        expires_at=None if expires_in is None else now + expires_in,
        rate_limit=int(kw.pop("rate_limit", 0)),  # type: ignore[call-overload]
    )
    return made.secret, rec


async def put(store: TokenStore, rec: TokenRecord) -> None:
    await store.insert(rec, AuditEntry(rec.id, "create", rec.created_by))


async def test_a_token_is_found_by_its_hash_and_id_and_never_holds_the_secret(
    store: TokenStore,
) -> None:
    secret, rec = record(rate_limit=30)
    await put(store, rec)
    assert await store.by_hash(rec.token_hash) == rec
    assert await store.by_id(rec.id) == rec
    assert await store.by_hash("0" * 64) is None and await store.by_id("tok_nope") is None
    assert secret not in repr(rec) and rec.token_hash not in repr(rec)


async def test_a_hash_is_unique(store: TokenStore) -> None:
    _, rec = record()
    await put(store, rec)
    clash = TokenRecord(
        new_token_id(), rec.kind, rec.token_hash, rec.hint, rec.owner, "twin", rec.scopes,
        rec.created_at, rec.created_by,
    )  # fmt: skip
    with pytest.raises(StoreUnavailable):
        await put(store, clash)


async def test_listing_by_owner_newest_first_with_recent_revocations(store: TokenStore) -> None:
    now = time.time()
    _, old = record(owner="alice", name="old", created_at=now - 100)
    _, new = record(owner="alice", name="new", created_at=now - 10)
    _, gone = record(owner="alice", name="gone", created_at=now - 50)
    _, other = record(owner="bob")
    _, key = record("key", owner="alice")
    for rec in (old, new, gone, other, key):
        await put(store, rec)
    await store.revoke(gone.id, by="alice", reason="manual", at=now - 5)
    active = await store.listing(kind="pat", owner="alice")
    assert [r.name for r in active] == ["new", "old"]
    with_revoked = await store.listing(kind="pat", owner="alice", revoked_since=now - 30)
    assert [r.name for r in with_revoked] == ["new", "gone", "old"]
    assert [r.name for r in await store.listing(kind="pat", owner="alice", revoked_since=now)] == [
        "new",
        "old",
    ]
    assert {r.owner for r in await store.listing(kind="pat")} == {"alice", "bob"}


async def test_revoke_once_audited_and_reported(store: TokenStore) -> None:
    _, rec = record()
    await put(store, rec)
    at = time.time()
    revoked = await store.revoke(rec.id, by="admin", reason="leaked", at=at, action="leak_report")
    assert revoked is not None and revoked.revoked_at == pytest.approx(at)
    assert (revoked.revoked_by, revoked.revoked_reason) == ("admin", "leaked")
    assert await store.revoke(rec.id, by="admin", reason="again", at=at + 1) is None
    assert await store.revoke("tok_missing", by="admin", reason="x", at=at) is None
    assert (await store.by_id(rec.id)).revoked_reason == "leaked"  # type: ignore[union-attr]
    assert await store.revoked_since(at - 1) == [(rec.token_hash, pytest.approx(at))]
    assert await store.revoked_since(at + 1) == []
    history = await store.history(rec.id)
    assert [(e.action, e.actor) for e in history] == [
        ("create", rec.owner),
        ("leak_report", "admin"),
    ]
    assert history[1].detail == {"reason": "leaked"}


async def test_regenerate_replaces_atomically(store: TokenStore) -> None:
    _, old = record(name="CI")
    await put(store, old)
    _, new = record(name="CI")
    assert await store.replace(old.id, new, by="alice") is not None
    assert (await store.by_id(old.id)).revoked_reason == "regenerated"  # type: ignore[union-attr]
    assert await store.by_hash(new.token_hash) == new
    _, newer = record(name="CI")
    assert await store.replace(old.id, newer, by="alice") is None  # already replaced
    assert await store.by_hash(newer.token_hash) is None  # nothing written
    assert [e.action for e in await store.history(old.id)] == ["create", "regenerate"]
    assert [e.detail for e in await store.history(new.id)] == [{"regenerated_from": old.id}]


async def test_last_used_is_written_in_one_batch_and_never_goes_back(store: TokenStore) -> None:
    _, one = record()
    _, two = record()
    for rec in (one, two):
        await put(store, rec)
    now = time.time()
    await store.touch([Use(one.id, now, "203.0.113.7"), Use(two.id, now - 5, "2001:db8::1")])
    assert (await store.by_id(one.id)).last_used_ip == "203.0.113.7"  # type: ignore[union-attr]
    await store.touch([Use(one.id, now - 60, "198.51.100.1")])  # older: ignored
    fetched = await store.by_id(one.id)
    assert fetched is not None and fetched.last_used_at == pytest.approx(now)
    assert fetched.last_used_ip == "203.0.113.7"
    await store.touch([])


async def test_expiry_warnings_are_claimed_once(store: TokenStore) -> None:
    now = time.time()
    _, soon = record(expires_in=3 * 86400)
    _, later = record(expires_in=30 * 86400)
    _, never = record(expires_in=None)
    _, gone = record(expires_in=86400)
    for rec in (soon, later, never, gone):
        await put(store, rec)
    await store.revoke(gone.id, by="x", reason="manual", at=now)
    horizon = now + 7 * 86400
    first, second = await asyncio.gather(
        store.claim_expiring(now, horizon), store.claim_expiring(now, horizon)
    )
    assert sorted(r.id for r in first + second) == [soon.id]
    await store.unclaim_expiring(soon.id)
    assert [r.id for r in await store.claim_expiring(now, horizon)] == [soon.id]
    assert await store.claim_expiring(now, horizon) == []


async def test_expired_tokens_are_audited_once(store: TokenStore) -> None:
    _, stale = record(expires_in=-10)
    _, fresh = record()
    for rec in (stale, fresh):
        await put(store, rec)
    now = time.time()
    assert [r.id for r in await store.note_expired(now)] == [stale.id]
    assert await store.note_expired(now) == []
    assert [e.action for e in await store.history(stale.id)] == ["create", "expire"]
    assert not stale.active(now) and fresh.active(now)


async def test_the_audit_table_is_append_only(store: TokenStore) -> None:
    _, rec = record()
    await put(store, rec)
    await store.audit(AuditEntry(rec.id, "leak_report", "scanner", {"source": "github"}))
    assert [e.action for e in await store.history(rec.id)] == ["create", "leak_report"]
    raw = store._conn if store.backend == "sqlite" else None  # type: ignore[attr-defined]
    if raw is not None:
        loop = asyncio.get_running_loop()
        with pytest.raises(Exception, match="append-only"):
            await loop.run_in_executor(
                store._executor,  # type: ignore[attr-defined]
                raw.execute,
                "DELETE FROM kh_token_audit",
            )
    else:
        pool = await store._get_pool()  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="append-only"):
            await pool.execute("UPDATE kh_token_audit SET actor = 'someone else'")
