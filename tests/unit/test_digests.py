"""The per-request digests: the very values hashlib and hmac give, by the faster route."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from proxy.kernel import digests

MESSAGES = [b"", b"ory_st_" + b"x" * 32, "Ålice@exämple.com".encode(), bytes(range(256)) * 5]


@pytest.mark.parametrize("message", MESSAGES)
def test_sha256_is_hashlibs(message: bytes) -> None:
    assert digests.sha256_hex(message) == hashlib.sha256(message).hexdigest()


@pytest.mark.parametrize("key", [b"", b"secret", b"k" * 64, b"k" * 200])
@pytest.mark.parametrize("message", MESSAGES)
def test_hmac_is_hmacs(key: bytes, message: bytes) -> None:
    keyed = digests.Hmac(key)
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    assert keyed.hex(message) == expected
    assert keyed.hex(message) == expected  # the key schedule is reused, not consumed


def test_cpythons_builtin_sha256_is_the_one_used() -> None:
    # If a new CPython renames its built-in module, every key still comes out the same
    # (hashlib is the fallback) but each costs several microseconds more: say so here.
    assert digests.sha256 is not hashlib.sha256
