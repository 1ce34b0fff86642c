"""Property 3: whatever Kratos decodes as JSON, form or multipart, ``media_type`` names the
same (or refuses the body); and Go's lower-casing, exactly."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from proxy.kernel.mediatype import go_lower, media_type, parse_media_type
from tests.parity.strategies import content_types, run_batches
from tests.support.go_oracle import GoOracle, MediaType

# strings.TrimSpace, as decoderx trims the header before parsing it.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)


def check_media_types(oracle: GoOracle, batch: Sequence[str]) -> None:
    answers: list[MediaType] = oracle.many("media_type", [{"value": v} for v in batch])
    lowered: list[str] = oracle.many("lower", [{"value": v} for v in batch])
    trimmed: list[MediaType] = oracle.many(
        "media_type", [{"value": v.strip(GO_SPACE)} for v in batch]
    )
    problems = []
    for value, go, low, exact in zip(batch, answers, lowered, trimmed, strict=True):
        ours = media_type(value)
        if go_lower(value) != low:
            problems.append(("lower", value, low))
        for decoder in {go.decoder_new, go.decoder_old} - {None}:
            # Kratos decodes the body: the guard must read the same type, or refuse.
            if ours is not None and ours != go.type.strip():
                problems.append((decoder, value, go, ours))
        if "," not in value:
            # Where no release reads a list, the answers are exactly Go's.
            parsed = parse_media_type(value.strip(GO_SPACE))
            expected = (exact.type, dict(exact.params)) if exact.ok else None
            if ours != (expected[0] if expected else None) or parsed != expected:
                problems.append(("exact", value, exact, ours, parsed))
    assert not problems, problems[:10]


def test_decoded_bodies_are_read_or_refused(go_oracle: GoOracle) -> None:
    run_batches(content_types(), lambda batch: check_media_types(go_oracle, batch))


def test_go_lower_matches_strings_tolower_on_every_code_point(go_oracle: GoOracle) -> None:
    assigned = go_oracle.tables("assigned")[1]
    points = [p for a, b in assigned for p in range(a, b + 1) if not 0xD800 <= p < 0xE000]
    # Code points Python's newer Unicode gives a case mapping Go 1.19 does not know yet
    # are left out: only their own lower-casing could differ.
    text = "".join(chr(p) for p in points if unicodedata.category(chr(p)) != "Cn")
    chunks = [text[i : i + 4096] for i in range(0, len(text), 4096)]
    lowered = go_oracle.many("lower", [{"value": c} for c in chunks])
    mismatches = [
        (hex(ord(c)), g, o)
        for chunk, go in zip(chunks, lowered, strict=True)
        for c, g, o in zip(chunk, go, go_lower(chunk), strict=True)
        if g != o
    ]
    assert len(go_lower(text)) == len(text)
    assert not mismatches, mismatches[:20]
