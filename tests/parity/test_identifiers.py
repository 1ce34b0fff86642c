"""Property 2: identifiers Kratos resolves to one account share the guard's bucket key.

Checked as ``N(x) == N(K(x))`` for the guard's key ``N`` and Kratos' canonicalisation ``K``
(the oracle's, completed with the phone step): it implies ``K(x) == K(y) ⇒ N(x) == N(y)``.
``K`` is the current release's, and each of the three before the PRECIS profile. Two
deliberate departures, each asserted instead:

- where releases disagree on the phone number a spelling means (Arabic-Indic digits, which
  the profile strips; a prefix NFKC turns into digits), the key is a number one reads;
- code points unassigned in the oracle's Unicode 13 but compatibility characters in Python's
  tables (e.g. U+A7F2 MODIFIER LETTER CAPITAL C) fold to what they stand for, as a Kratos
  built with newer Unicode folds them, where the oracle strips them: inputs keep them out.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy.guard.identity import MAX_IDENTIFIER, normalise_identifier
from tests.parity.strategies import identifiers, run_batches
from tests.support.go_oracle import (
    GoOracle,
    Identifier,
    LegacyIdentifier,
    kratos_identifier,
    kratos_legacy_identifiers,
)


def _is_e164(value: str) -> bool:
    return value.startswith("+") and value[1:].isdigit()


def check_identifiers(oracle: GoOracle, newer: frozenset[str], batch: Sequence[str]) -> None:
    values = ["".join(c for c in x if c not in newer) for x in batch]
    current: list[Identifier] = oracle.many("identifier", [{"value": v} for v in values])
    legacy: list[LegacyIdentifier] = oracle.many(
        "identifier_legacy", [{"value": v} for v in values]
    )
    problems = []
    for value, now, then in zip(values, current, legacy, strict=True):
        key = normalise_identifier(value)
        releases = (kratos_identifier(now), *kratos_legacy_identifiers(value, then))
        # Where releases disagree on whether (or which) a number is meant, the key may be
        # any number one of them reads: a phone account is what such a spelling reaches.
        numbers = {n for n in map(normalise_identifier, releases) if _is_e164(n)}
        for release, merged in zip(("current", "v1", "v2", "v3"), releases, strict=True):
            if key != normalise_identifier(merged) and key not in numbers:
                problems.append((release, value, merged, key))
        if len(key) > MAX_IDENTIFIER or normalise_identifier(key) != key:
            problems.append(("length or not idempotent", value, key))
    assert not problems, problems[:10]


def test_kratos_merges_imply_guard_merges(
    go_oracle: GoOracle, newer_than_oracle: frozenset[str]
) -> None:
    run_batches(identifiers(), lambda batch: check_identifiers(go_oracle, newer_than_oracle, batch))
