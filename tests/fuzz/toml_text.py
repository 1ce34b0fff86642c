"""A small TOML writer for generated documents (the standard library only reads TOML), and
the Hypothesis strategies of TOML values — every type TOML has but dates, NaN and the
infinities included, since an operator can write them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

# Text TOML can carry: no surrogates (not encodable), everything else, escapes included.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
scalars = st.one_of(
    text,
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=8,
)


def _string(value: str) -> str:
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def value(v: Any) -> str:
    """``v`` as a TOML value (inline arrays and tables)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(value(i) for i in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_string(k)} = {value(i)}" for k, i in v.items()) + "}"
    raise TypeError(type(v))


def table(header: str, body: Mapping[str, Any]) -> str:
    lines = [header] + [f"{_string(k)} = {value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"
