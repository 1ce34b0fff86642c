"""The load generator: logins through the public listener, decisions (on sessions and on API
keys) and the verification and identity hooks on the internal one, each answer recorded with
its start and end time.

Each kind has a few workers, each sending one request at a time with a short pause (a closed
loop, bounded in count by the run's length). Every request has a deadline, so an outage shows
as an answer (or a client timeout, recorded as status 0) and never stops the load.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson

from chaos.stack import HOOK_KEY, PASSWORD, Stack

CLIENT_TIMEOUT = 15.0  # longer than any bound of the service: its own answer is recorded
KINDS = (
    "login",
    "decision_cached",
    "decision_fresh",
    "decision_token",
    "verification",
    "identity",
)


@dataclass(slots=True)
class Answer:
    kind: str
    started: float
    ended: float
    status: int  # 0: no answer within CLIENT_TIMEOUT, or the connection failed
    detail: str = ""  # the hook's "status", when it answered one

    @property
    def latency(self) -> float:
        return self.ended - self.started


@dataclass
class Load:
    stack: Stack
    pause: float = 0.05  # between one worker's requests
    workers: int = 2  # per kind
    token_pool: int = 0  # decision_fresh: 0 = a new session per decision, else a rotating pool
    answers: list[Answer] = field(default_factory=list)
    verified: dict[str, str] = field(default_factory=dict)  # identity id → final hook status
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _cached: list[str] = field(default_factory=list)
    _pool: list[str] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _key_counter: itertools.count[int] = field(default_factory=itertools.count)

    async def start(self) -> None:
        state, users = self.stack.kratos, self.stack.users
        self._cached = [state.create_session(u["id"])[0] for u in users[:5]]
        self._pool = [
            state.create_session(users[i % len(users)]["id"])[0] for i in range(self.token_pool)
        ]
        self._http = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
        )
        senders: dict[str, Callable[[], Awaitable[tuple[int, str]]]] = {
            "login": self._login,
            "decision_cached": lambda: self._decide(random.choice(self._cached)),
            "decision_fresh": self._decide_fresh,
            "decision_token": self._decide_token,
            "verification": self._verify,
            "identity": self._identity,
        }
        for kind in KINDS:
            for _ in range(self.workers):
                self._tasks.append(asyncio.create_task(self._worker(kind, senders[kind])))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.close()

    async def _worker(self, kind: str, send: Callable[[], Awaitable[tuple[int, str]]]) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, detail = await send()
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, detail = 0, type(exc).__name__
            self.answers.append(Answer(kind, started, time.monotonic(), status, detail))
            await asyncio.sleep(self.pause)

    # --- the requests -----------------------------------------------------------------------

    async def _login(self) -> tuple[int, str]:
        base = self.stack.service.public_url
        async with self._http.get(f"{base}/self-service/login/api") as response:
            if response.status != 200:
                await response.read()
                return response.status, "flow"
            flow = (await response.json())["id"]
        user = random.choice(self.stack.users)
        body = {"method": "password", "identifier": user["traits"]["email"], "password": PASSWORD}
        async with self._http.post(
            f"{base}/self-service/login?flow={flow}",
            data=orjson.dumps(body),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        ) as response:
            await response.read()
            return response.status, ""

    async def _decide(self, token: str, uri: str = "/app/home") -> tuple[int, str]:
        headers = {
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Uri": uri,
            "Accept": "application/json",
        }
        if uri.startswith("/api/"):
            headers["X-API-Key"] = token
        else:
            headers["X-Session-Token"] = token
        url = f"{self.stack.service.internal_url}/decisions"
        async with self._http.get(url, headers=headers) as response:
            await response.read()
            return response.status, ""

    async def _decide_fresh(self) -> tuple[int, str]:
        """A session no decision has seen yet (or, with a pool, one of many): only Kratos
        can say whether it is valid, so it must never be allowed while Kratos is away."""
        if self._pool:
            token = self._pool[next(self._counter) % len(self._pool)]
        else:
            user = random.choice(self.stack.users)
            token = self.stack.kratos.create_session(user["id"])[0]
        return await self._decide(token)

    async def _decide_token(self) -> tuple[int, str]:
        """An API key whose cache entry has expired (the pool is rotated far slower than
        TOKENS_CACHE_TTL): only the credential store can vouch for it, so it must never be
        allowed while the store is away."""
        keys = self.stack.api_keys
        return await self._decide(keys[next(self._key_counter) % len(keys)], "/api/users")

    async def _hook(self, path: str, body: dict[str, str]) -> tuple[int, str]:
        url = f"{self.stack.service.internal_url}{path}"
        headers = {"X-Kratos-Hooks-Key": HOOK_KEY, "Content-Type": "application/json"}
        async with self._http.post(url, data=orjson.dumps(body), headers=headers) as response:
            raw = await response.read()
        detail = ""
        if response.status == 200:
            detail = str(orjson.loads(raw).get("status", ""))
        return response.status, detail

    async def _verify(self) -> tuple[int, str]:
        """A new identity's verification, retried like Kratos retries a failed web hook."""
        identity = str(uuid.uuid4())
        body = {
            "identity_id": identity,
            "email": f"{identity[:8]}@chaos.example",
            "display_name": "Ada",
            "first_name": "Ada",
        }
        for _ in range(2):  # Kratos' first two attempts; each failed one is an answer too
            started = time.monotonic()
            status, detail = await self._hook("/hooks/kratos/verification", body)
            if status == 200:
                self.verified[identity] = detail
                return status, detail
            self.answers.append(Answer("verification", started, time.monotonic(), status, detail))
        status, detail = await self._hook("/hooks/kratos/verification", body)
        if status == 200:
            self.verified[identity] = detail
        return status, detail

    async def _identity(self) -> tuple[int, str]:
        user = random.choice(self.stack.users)
        return await self._hook("/hooks/kratos/identity?point=login", {"identity_id": user["id"]})
