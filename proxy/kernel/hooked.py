"""What a feature on a hooked public route sees: the request, Kratos' answer, its reply.

The public listener forwards every request to Kratos untouched; a few routes (the login
submission, the other guarded self-service posts, the logout watch, the lockout flow view)
are *hooked*: their feature reads the body (bounded), forwards it, looks at Kratos' answer
and either passes that answer on or replies itself. This module is that contract and nothing
else — the transport that carries the bytes implements :class:`Hooked`, so a feature is the
same code on any data path, and never touches sockets, streams or response objects.

A hook is ``async def hook(request: Hooked) -> Reply``. Errors it raises
(``KratosHooksError``: a body too large, Kratos unreachable …) are answered by the transport
in Kratos' error shape; ``Reply.relay`` passes Kratos' answer on byte for byte (the part of
the body already read, then the rest as it arrives); ``Reply.own`` is the feature's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.kernel.canonical import route_key
from proxy.kernel.view import RequestView

# Kratos' answers on hooked routes are a flow, a session or an error: small. A larger body is
# passed on unread past this many bytes (``Answer.complete`` is then False).
ANSWER_LIMIT = 1024 * 1024


class Answer(Protocol):
    """Kratos' answer to a forwarded hooked request, its body read up to a limit."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """End-to-end headers as Kratos sent them (every ``Set-Cookie`` kept, in order)."""
        ...

    @property
    def body(self) -> bytes:
        """The body as sent (not decompressed), up to the limit ``forward`` was given."""
        ...

    @property
    def complete(self) -> bool:
        """Whether ``body`` is all of it."""
        ...


@dataclass(frozen=True, slots=True)
class Reply:
    """What the transport writes back: Kratos' answer (``answer``), or the feature's own."""

    status: int = 0
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""
    answer: Answer | None = None

    @classmethod
    def relay(cls, answer: Answer) -> Reply:
        """Kratos' answer exactly as it came."""
        return cls(answer=answer)

    @classmethod
    def own(
        cls,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Reply:
        """An answer of the feature's own (the transport adds framing and ``X-Request-ID``)."""
        return cls(status, CIMultiDict(headers), body)


class Hooked(Protocol):
    """A request on a hooked public route."""

    @property
    def method(self) -> str: ...

    @property
    def view(self) -> RequestView:
        """The canonical view (route, path, query, flow id) — computed once per request."""
        ...

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The request's headers as received."""
        ...

    @property
    def client_ip(self) -> str:
        """The client's address, from the trusted-proxy logic — computed once per request."""
        ...

    @property
    def request_id(self) -> str: ...

    def cookie(self, name: str) -> str | None:
        """The value of the request's cookie ``name`` (cookies parsed once)."""
        ...

    async def read(self, limit: int, what: str = "The request body") -> bytes:
        """The whole body; ``BodyTooLarge`` (413, nothing forwarded) past ``limit`` bytes."""
        ...

    async def forward(self, body: bytes | None, *, limit: int = ANSWER_LIMIT) -> Answer:
        """The request to Kratos, as received but with ``body`` (None: without one), and
        Kratos' answer with up to ``limit`` bytes of its body read. ``UpstreamUnavailable``
        (502) or ``UpstreamTimeout`` (504) when Kratos cannot answer."""
        ...

    async def fetch(
        self, path_qs: str, *, accept: str = "application/json", limit: int = ANSWER_LIMIT
    ) -> Answer | None:
        """A ``GET`` of ``path_qs`` on Kratos' public API on the caller's behalf (its
        cookies and forwarding headers, ``Accept: accept``, no body, redirects not followed)
        — a flow to show, say; None when Kratos cannot be reached."""
        ...


Hook = Callable[[Hooked], Awaitable[Reply]]


class HookTable:
    """The public routes features intercept, by method and route key (``route_key`` of the
    canonical path: every spelling Kratos routes alike); everything else is forwarded
    untouched. Registering a route that is already taken is a wiring bug.

    A feature that owns a whole subtree (the token page under ``/tokens``) hooks a *prefix*:
    the prefix itself and every path below it. Exact routes are looked up first, so ``get``
    costs the proxied majority one dictionary miss and a ``startswith`` per prefix."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], Hook] = {}
        self._prefixes: list[tuple[str, str, str, Hook]] = []  # (method, key, key + "/", hook)

    def add(self, method: str, path: str, hook: Hook) -> None:
        key = (method.upper(), route_key(path))
        if key in self._routes:
            raise ValueError(f"{method} {path} is hooked twice")
        self._routes[key] = hook

    def add_prefix(self, method: str, prefix: str, hook: Hook) -> None:
        """``hook`` for ``prefix`` and every path below it (``/tokens``, ``/tokens/…``)."""
        key = route_key(prefix)
        if key == "/":
            raise ValueError("hooking every path is not a prefix")
        for known_method, known, _, _ in self._prefixes:
            overlap = known == key or key.startswith(known + "/") or known.startswith(key + "/")
            if known_method == method.upper() and overlap:
                raise ValueError(f"{method} {prefix} overlaps the hooked prefix {known}")
        self._prefixes.append((method.upper(), key, key + "/", hook))

    def get(self, method: str, view: RequestView) -> Hook | None:
        hook = self._routes.get((method, view.route))
        if hook is not None or not self._prefixes:
            return hook
        route = view.route
        for known_method, key, below, prefix_hook in self._prefixes:
            if known_method == method and (route == key or route.startswith(below)):
                return prefix_hook
        return None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._routes) + [(m, k + "/**") for m, k, _, _ in self._prefixes])
