"""x/text's NFKC, quirk included (``proxy.guard.go_nfkc``), against the real one."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import strategies as st

from proxy.guard.go_nfkc import nfkc
from tests.parity.strategies import any_char, run_batches, seeded
from tests.support.go_oracle import GoOracle

# Combining marks (BMP and supplementary), and supplementary starters whose low 16 bits are
# a BMP letter that composes: the pairs x/text looks up by their low 16 bits.
MARKS = [0x301, 0x302, 0x307, 0x308, 0x323, 0x327, 0x345, 0x31B, 0x110BA, 0x11127, 0x1133E,
         0x11357, 0x114B0, 0x114BA, 0x115AF, 0x11930, 0x1161, 0x11A8, 0x3099]  # fmt: skip
LOW_BITS = [0x41, 0x61, 0x65, 0x4F, 0x1100, 0xAC00, 0x1099, 0x1131, 0x1347, 0x14B9, 0x15B8,
            0x1935, 0x55, 0x3B1, 0x5D2]  # fmt: skip


def _text(length: int, rnd: random.Random) -> str:
    out = []
    for _ in range(length):
        roll = rnd.random()
        if roll < 0.3:
            out.append(chr(rnd.choice(MARKS)))
        elif roll < 0.5:
            out.append(chr(rnd.randrange(1, 0x11) << 16 | rnd.choice(LOW_BITS)))
        elif roll < 0.7:
            out.append(chr(rnd.randrange(0x20, 0x250)))
        else:
            out.append(any_char(rnd))
    return "".join(out)


def texts() -> st.SearchStrategy[str]:
    return seeded(list(range(1, 8)), _text)


def check(oracle: GoOracle, newer: frozenset[str], batch: Sequence[str]) -> None:
    batch = ["".join(c for c in v if c not in newer) for v in batch]
    answers: list[str] = oracle.many("nfkc", [{"value": v} for v in batch])
    problems = [(v, go, nfkc(v)) for v, go in zip(batch, answers, strict=True) if nfkc(v) != go]
    assert not problems, [[hex(ord(c)) for c in s] for p in problems[:5] for s in p]


def test_nfkc_is_x_texts(go_oracle: GoOracle, newer_than_oracle: frozenset[str]) -> None:
    run_batches(texts(), lambda batch: check(go_oracle, newer_than_oracle, batch))
