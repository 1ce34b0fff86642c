"""NFKC as Kratos computes it: golang.org/x/text's ``norm.NFKC``, quirk included.

x/text recomposes with a lookup keyed by both code points cut to their low 16 bits, so a
starter outside the Basic Multilingual Plane composes with a following combining mark as if
it were the BMP character with the same low 16 bits: ``U+E0041 U+0302`` (an invisible tag
character and a circumflex) comes out as ``Â``, and Kratos resolves it to the same account
as ``â``. Python's ``unicodedata`` composes correctly, which would give such spellings
buckets of their own. :func:`nfkc` therefore decomposes with Python (x/text decomposes
correctly) and recomposes the way x/text does whenever the text holds a supplementary-plane
code point; BMP-only text, the common case, is plain ``unicodedata`` NFKC, the same result.
"""

from __future__ import annotations

import unicodedata


def _primary_composites() -> tuple[dict[tuple[int, int], str], frozenset[int]]:
    """Canonical pairs that compose, keyed as x/text keys them, and every second member."""
    table: dict[tuple[int, int], str] = {}
    seconds: set[int] = set()
    for point in range(0x20000):  # all primary composites so far lie in planes 0 and 1
        char = chr(point)
        mapping = unicodedata.decomposition(char)
        if not mapping or mapping.startswith("<"):
            continue
        parts = mapping.split()
        if len(parts) != 2 or unicodedata.normalize("NFC", char) != char:
            continue  # a singleton, or excluded from composition
        first, second = int(parts[0], 16), int(parts[1], 16)
        table[(first & 0xFFFF, second & 0xFFFF)] = char
        seconds.add(second)
    return table, frozenset(seconds)


_COMPOSITES, _SECOND = _primary_composites()

_L, _V, _T, _S = 0x1100, 0x1161, 0x11A7, 0xAC00  # Hangul jamo and syllable bases


def _combine(first: str, second: str) -> str | None:
    a, b = ord(first), ord(second)
    if _L <= a < _L + 19 and _V <= b < _V + 21:
        return chr(_S + ((a - _L) * 21 + (b - _V)) * 28)
    if _S <= a < _S + 11172 and (a - _S) % 28 == 0 and _T < b < _T + 28:
        return chr(a + b - _T)
    if b not in _SECOND:  # x/text only tries marks that really combine backwards
        return None
    return _COMPOSITES.get((a & 0xFFFF, b & 0xFFFF))


def _compose(decomposed: str) -> str:
    """Canonical composition (UAX #15), with x/text's 16-bit pair lookup."""
    out: list[str] = []
    starter = -1
    last_class = -1  # combining class of the last character kept after the starter
    for char in decomposed:
        cls = unicodedata.combining(char)
        if starter >= 0 and (last_class == -1 or 0 < last_class < cls):
            composite = _combine(out[starter], char)
            if composite is not None:
                out[starter] = composite
                continue
        if cls == 0:
            starter, last_class = len(out), -1
        else:
            last_class = cls
        out.append(char)
    return "".join(out)


def nfkc(text: str) -> str:
    """``norm.NFKC.String(text)`` of golang.org/x/text."""
    if text.isascii() or max(text) <= "\uffff":
        return unicodedata.normalize("NFKC", text)
    return _compose(unicodedata.normalize("NFKD", text))
