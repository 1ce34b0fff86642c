"""The names of the guard's state: which buckets an attempt touches and under which keys,
the flow holds and the rate windows. Pure: one place spells each key.

Nothing here holds an identifier or an address in clear — keys carry the ``Keyer``'s HMACs —
and an address is hashed once per request (``address``), then handed to every name that
needs it (the buckets, the rate window).

Every name starts with the Redis hash tag ``{bo}`` (``BUCKETS``), so on a Redis Cluster all
of the guard's keys live in one hash slot — one shard. Nothing finer can keep each script
call single-slot: one attempt's call touches its identifier's bucket, its address's bucket
and their pair (and the address's rate window), so identifiers and addresses are all linked
through pairs, and any split would cut some attempt's keys across slots — and its check of
three buckets would stop being one atomic step. One shard carries the load easily: two
small scripts per login, every key expiring within its window.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.guard.identity import Keyer, address_group, normalise_identifier
from proxy.guard.policy import Bucket, Policies
from proxy.guard.store import RateWindow
from proxy.kernel.digests import sha256_hex
from proxy.kernel.logs import fingerprint

# The hash tag: Redis hashes a key by the text inside its first {…} (see above).
BUCKETS = "{bo}:"


@dataclass(frozen=True, slots=True)
class HashedSubject:
    """Whom an attempt is about, already hashed: never the identifier itself."""

    identifier: str | None  # HMAC of the normalised identifier (or of the session/flow)
    address: str  # HMAC of the address group
    tag: str  # short fingerprint for logs


def _identifier_key(hashed: str) -> str:
    return f"{BUCKETS}id:{hashed}"


def _address_key(hashed: str) -> str:
    return f"{BUCKETS}ip:{hashed}"


def _pair_prefix(hashed: str) -> str:
    return f"{BUCKETS}pair:{hashed}:"


class BucketNames:
    """Keys of buckets, flow holds and rate windows, under one server secret."""

    def __init__(self, keyer: Keyer, policies: Policies) -> None:
        self.keyer = keyer
        self.policies = policies

    def address(self, ip: str) -> str:
        """The address group's HMAC (IPv6 per /64): computed once per request."""
        return self.keyer.address(address_group(ip))

    def subject(
        self, identifier: str | None, address: str, *, kind: str = "identifier"
    ) -> HashedSubject:
        """The subject of an attempt by ``identifier`` (or, for second factors, by a session
        or flow: ``kind``) from the hashed ``address``."""
        hashed = None
        if identifier:
            if kind == "identifier":
                hashed = self.keyer.identifier(normalise_identifier(identifier))
            else:
                hashed = self.keyer.subject(kind, identifier)
        return HashedSubject(hashed, address, fingerprint(hashed or address))

    def buckets(self, subject: HashedSubject) -> tuple[Bucket, ...]:
        p = self.policies
        ip = Bucket("ip", _address_key(subject.address), p.ip, reset_on_success=False)
        if subject.identifier is None:
            return (ip,)
        ident = Bucket("identifier", _identifier_key(subject.identifier), p.identifier, True)
        pair = Bucket("pair", _pair_prefix(subject.identifier) + subject.address, p.pair, True)
        return (ident, ip, pair)

    def identifier_key(self, identifier: str) -> str:
        return _identifier_key(self.hashed_identifier(identifier))

    def hashed_identifier(self, identifier: str) -> str:
        return self.keyer.identifier(normalise_identifier(identifier))

    def identifier_keys(
        self, hashed: str, address: str | None = None
    ) -> tuple[list[str], list[str]]:
        """(keys, key prefixes) that hold an identifier's state: its bucket and its pairs —
        every pair, or only the one with ``address``."""
        keys = [_identifier_key(hashed)]
        if address is None:
            return keys, [_pair_prefix(hashed)]
        return [*keys, _pair_prefix(hashed) + address], []

    def address_key(self, ip: str) -> str:
        return _address_key(self.address(ip))

    def flow_key(self, flow_id: str) -> str:
        return f"{BUCKETS}flow:{sha256_hex(flow_id.encode())[:32]}"

    @staticmethod
    def rate_window(
        flow: str, address: str, limit: int, *, now: float, window: float
    ) -> RateWindow | None:
        """The fixed window of ``limit`` submissions of ``flow`` from ``address`` holding
        ``now``; None when the window is off."""
        if limit <= 0:
            return None
        index = int(now // window)
        return RateWindow(f"{BUCKETS}rl:{flow}:{address}:{index}", limit, (index + 1) * window)
