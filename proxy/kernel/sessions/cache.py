"""Session look-ups without asking Kratos every time: LRU in process, Redis across replicas.

    decision ─► local LRU ─► Redis ─► Kratos whoami   (each step only on a miss)

- Keys are a SHA-256 of the credential, never the credential itself.
- A valid session is trusted for min(``cache_ttl``, its own ``expires_at``); an invalid
  credential for ``negative_cache_ttl``; Kratos errors and step-up answers are not cached.
- Concurrent look-ups for one credential share a single Kratos call.
- A logout seen by the edge proxy (``purge``) replaces the entry with an "invalid" marker
  here, in Redis (overwriting, for the whole TTL) and — via pub/sub — on every replica. Stores
  use ``SET NX`` so a look-up that was in flight during the logout cannot resurrect it.
- Redis failing → the Redis layer is skipped for a few seconds and Kratos is asked directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from proxy.kernel.redis import RedisClient, RedisUnavailable, redis_call
from proxy.kernel.sessions.metrics import REDIS_ERRORS, SESSION_CACHE
from proxy.kernel.sessions.whoami import Credential, WhoamiClient, WhoamiResult, parse_time

# The logger name operators already filter on (these look-ups began as the decisions').
log = logging.getLogger("kratos_hooks.decisions")
LOCAL_HIT = SESSION_CACHE.labels("local", "hit")
LOCAL_MISS = SESSION_CACHE.labels("local", "miss")

REDIS_PAUSE = 5.0  # seconds the Redis layer is skipped after a failure
REFRESH_EVERY = 1.0  # seconds between step-up re-checks of one credential


def session_key(prefix: str, key: str) -> str:
    return f"{prefix}decisions:session:{key}"


def purge_channel(prefix: str) -> str:
    return f"{prefix}decisions:purge"


@dataclass(frozen=True, slots=True)
class Entry:
    result: WhoamiResult
    expires: float  # wall-clock epoch seconds
    purged: bool = False
    fetched: float = 0.0  # when Kratos gave this answer to this process (0 = elsewhere)


def entry_ttl(result: WhoamiResult, now: float, ttl: float, negative_ttl: float) -> float:
    """Seconds ``result`` may be reused (pure); 0 = do not cache."""
    if result.verdict == "invalid":
        return negative_ttl
    if result.verdict != "valid" or result.session is None:
        return 0.0
    expires_at = parse_time(result.session.get("expires_at"))
    if expires_at is None:
        return ttl
    return max(0.0, min(ttl, expires_at.timestamp() - now))


def encode(entry: Entry) -> bytes:
    doc = {"v": entry.result.verdict, "s": entry.result.session, "e": entry.expires}
    if entry.purged:
        doc["p"] = True
    return orjson.dumps(doc)


def decode(raw: bytes) -> Entry | None:
    try:
        doc = orjson.loads(raw)
        verdict = doc["v"]
        if verdict not in {"valid", "invalid"}:
            return None
        return Entry(WhoamiResult(verdict, doc.get("s")), float(doc["e"]), bool(doc.get("p")))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


# Every cache in this process, so a logout seen by the public app purges the internal app's
# memory even when no Redis is configured.
RedisGetter = Callable[[], RedisClient | None]


class SessionCache:
    def __init__(
        self,
        whoami: WhoamiClient,
        redis: RedisGetter,
        *,
        prefix: str,
        ttl: float,
        negative_ttl: float,
        size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._whoami = whoami
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._size = max(1, size)
        self._clock = clock
        self._local: OrderedDict[str, Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[WhoamiResult]] = {}
        self._redis_paused_until = 0.0

    # --- the in-process layer ---------------------------------------------------------
    def _get_local(self, key: str) -> Entry | None:
        entry = self._local.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._local[key]
            return None
        self._local.move_to_end(key)
        return entry

    def _put_local(self, key: str, entry: Entry) -> None:
        current = self._local.get(key)
        if current is not None and current.purged and not entry.purged:
            if current.expires > self._clock():
                return  # logged out: a look-up that started earlier must not undo it
        self._local[key] = entry
        self._local.move_to_end(key)
        while len(self._local) > self._size:
            self._local.popitem(last=False)

    def purge_local(self, key: str) -> None:
        """Mark ``key`` logged out in this process for the cache TTL."""
        invalid = WhoamiResult("invalid")
        self._put_local(key, Entry(invalid, self._clock() + self._ttl, purged=True))
        self._inflight.pop(key, None)

    def flush_local(self) -> None:
        """Forget every in-process entry (purges may have been missed meanwhile)."""
        self._local.clear()

    # --- the Redis layer -----------------------------------------------------------------
    def _client(self) -> RedisClient | None:
        if time.monotonic() < self._redis_paused_until:
            return None
        return self._redis()

    def _redis_failed(self, exc: BaseException) -> None:
        REDIS_ERRORS.inc()
        self._redis_paused_until = time.monotonic() + REDIS_PAUSE
        log.warning(
            "redis unavailable for the session cache; asking Kratos directly",
            extra={"error": str(exc), "pause_s": REDIS_PAUSE},
        )

    async def _get_redis(self, key: str) -> Entry | None:
        client = self._client()
        if client is None:
            return None
        try:
            raw = await redis_call(client.get(session_key(self._prefix, key)))
        except RedisUnavailable as exc:
            self._redis_failed(exc)
            return None
        entry = decode(raw) if raw else None
        if entry is not None and entry.expires <= self._clock():
            return None
        SESSION_CACHE.labels("redis", "hit" if entry else "miss").count += 1
        return entry

    async def _put_redis(self, key: str, entry: Entry, *, replace: bool = False) -> None:
        """Share ``entry``; unless ``replace``, an entry another replica wrote (a purge, say)
        is left alone."""
        client = self._client()
        ttl_ms = int((entry.expires - self._clock()) * 1000)
        if client is None or ttl_ms <= 0:
            return
        try:
            await redis_call(
                client.set(session_key(self._prefix, key), encode(entry), px=ttl_ms, nx=not replace)
            )
        except RedisUnavailable as exc:
            self._redis_failed(exc)

    async def _ask(self, key: str, credential: Credential, *, replace: bool) -> WhoamiResult:
        """Kratos' answer for ``credential``, cached here and in Redis for its TTL."""
        result = await self._whoami.ask(credential)
        now = self._clock()
        ttl = entry_ttl(result, now, self._ttl, self._negative_ttl)
        if ttl > 0:
            fresh = Entry(result, now + ttl, fetched=now)
            self._put_local(key, fresh)
            await self._put_redis(key, fresh, replace=replace)
        return result

    # --- look-ups ----------------------------------------------------------------------
    def cached(self, credential: Credential) -> WhoamiResult | None:
        """The in-process answer, without a coroutine: the common case of every decision."""
        entry = self._get_local(credential.key)
        if entry is None:
            return None
        LOCAL_HIT.count += 1
        return entry.result

    async def lookup(self, credential: Credential) -> WhoamiResult:
        key = credential.key
        entry = self._get_local(key)
        if entry is not None:
            LOCAL_HIT.count += 1
            return entry.result
        LOCAL_MISS.count += 1
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, credential))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one caller giving up must not cancel the look-up the others wait for.
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[WhoamiResult]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]

    async def _fetch(self, key: str, credential: Credential) -> WhoamiResult:
        entry = await self._get_redis(key)
        if entry is not None:
            self._put_local(key, entry)
            return entry.result
        return await self._ask(key, credential, replace=False)

    async def refresh(self, credential: Credential) -> WhoamiResult:
        """Ask Kratos again (the cached answer may predate a step-up) and cache the answer.

        At most once per ``REFRESH_EVERY`` per credential: a client hammering a step-up rule
        with an aal1 session must not turn every decision into a Kratos call.
        """
        key = credential.key
        entry = self._get_local(key)
        if entry is not None and self._clock() - entry.fetched < REFRESH_EVERY:
            return entry.result
        return await self._ask(key, credential, replace=True)
