"""What support staff and callers outside the proxy do to buckets: forget an account's or an
address's failures (``kratos-hooks backoff clear``, the after-login endpoint)."""

from __future__ import annotations

from proxy.guard.core import Guard
from proxy.kernel.logs import fingerprint


async def reset(guard: Guard, identifier: str, *, cause: str, ip: str | None = None) -> int:
    """Forget the identifier bucket and its pairs (all of them, or the one for ``ip``)."""
    names = guard.names
    hashed = names.hashed_identifier(identifier)
    keys, prefixes = names.identifier_keys(hashed, None if ip is None else names.address(ip))
    return await guard.clear(keys, prefixes, cause=cause, tag=fingerprint(hashed))


async def reset_address(guard: Guard, ip: str, *, cause: str) -> int:
    """Forget the address bucket of ``ip``'s group (its pairs stay with their accounts)."""
    hashed = guard.names.address(ip)
    key = guard.names.address_key(ip)
    return await guard.clear([key], [], cause=cause, tag=fingerprint(hashed))
