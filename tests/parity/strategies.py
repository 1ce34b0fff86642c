"""Adversarial inputs for the parity properties, and the batch runner that feeds them.

Every property draws *batches* (lists) of inputs, so the oracle answers a whole batch in one
pipe round trip; :func:`run_batches` runs a property with a fixed, database-less,
derandomised Hypothesis profile and checks that at least ``MIN_INPUTS`` inputs were judged.

Each input is Hypothesis' choice of a starting point (a route, an identifier, a media type)
and of a seed; a seeded ``random.Random`` then splices in the adversarial pieces. Drawing
every character through Hypothesis costs about 40 µs a draw, which would make 10,000 inputs
of twenty draws each cost far more than the oracle round trips; this keeps a property at a
second or two and every run reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

MIN_INPUTS = 10_000
BATCH = 130
EXAMPLES = 80  # 80 batches of 130 to 260: at least 10,400 inputs per property

PROFILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: a failing batch's assertion already names the inputs that failed, and
    # shrinking a batch of a hundred oracle questions takes minutes.
    phases=(Phase.explicit, Phase.generate),
)


def run_batches(strategy: st.SearchStrategy[T], check: Callable[[Sequence[T]], None]) -> int:
    """Run ``check`` on batches drawn from ``strategy``; return how many inputs it judged."""
    judged: list[int] = []

    @PROFILE
    @given(st.lists(strategy, min_size=BATCH, max_size=2 * BATCH))
    def prop(batch: list[T]) -> None:
        check(batch)
        judged.append(len(batch))

    prop()
    total = sum(judged)
    assert total >= MIN_INPUTS, f"only {total} inputs judged"
    return total


def chars(*points: int | range) -> list[str]:
    out: list[str] = []
    for p in points:
        out.extend(map(chr, p) if isinstance(p, range) else [chr(p)])
    return out


def flip_case(text: str, mask: int) -> str:
    return "".join(c.swapcase() if mask >> (i % 60) & 1 else c for i, c in enumerate(text))


def any_char(rnd: random.Random) -> str:
    """Any code point but a surrogate."""
    while True:
        point = rnd.randrange(0x110000)
        if not 0xD800 <= point < 0xE000:
            return chr(point)


def seeded(starts: Sequence[T], build: Callable[[T, random.Random], str]) -> st.SearchStrategy[str]:
    """Hypothesis picks a starting point and a seed; ``build`` mangles it with the seed."""
    return st.builds(
        lambda start, seed: build(start, random.Random(seed)),
        st.sampled_from(starts),
        st.integers(0, 2**64),
    )


# --- request targets ------------------------------------------------------------------------

SEGMENTS = [
    "self-service", "login", "registration", "recovery", "verification", "settings", "flows",
    "browser", "api", "logout", "sessions", "whoami", "errors", "health", "alive", "x", "",
    ".", "..", "...", "%2e", "%2E", "%2e%2e", ".%2E", "%2E.", "self%2Dservice",
    "%73elf-service", "log%69n", "login;x", ";", "%3B", "%00", "%25", "%252e", "%5C", "\\",
    "%2f", "%2F", "İ", "%C4%B0", "é", "%E9", "%ZZ", "%", "%4", "a#b", "\u212a", "\t", "+",
]  # fmt: skip
SEPARATORS = ["/", "/", "/", "//", "/./", "/../", "%2F", "%2f", "/%2e/", "\\", "/;/"]
PREFIXES = [
    "", "", "", "/", "//", "http://kratos", "HTTP://kratos:4433", "https://u@h", "x:",
    "http:", "http://[::1]", "*", "http://h?",
]  # fmt: skip
SUFFIXES = ["", "", "/", "//", "/.", "/..", "?flow=1", "?", "#x", "?a=b?c", " HTTP/1.1"]
METHODS = ["POST", "POST", "GET", "GET", "DELETE", "PUT", "OPTIONS", "HEAD", "post", "PATCH"]


ROUTES = [
    ["self-service", "login"],
    ["self-service", "registration"],
    ["self-service", "recovery"],
    ["self-service", "verification"],
    ["self-service", "settings"],
    ["self-service", "logout"],
    ["self-service", "logout", "api"],
    ["self-service", "logout", "browser"],
    ["self-service", "login", "flows"],
    ["self-service", "settings", "flows"],
    ["sessions", "whoami"],
]


def _target(route: list[str], rnd: random.Random) -> str:
    parts = list(route)
    for _ in range(rnd.choice([0, 0, 1, 2, 3])):
        parts.insert(rnd.randint(0, len(parts)), rnd.choice(SEGMENTS))
    text = rnd.choice(PREFIXES)
    if not text.endswith("/") and text != "*":
        text += "/"
    for i, part in enumerate(parts):
        if i:
            text += rnd.choice(SEPARATORS)
        text += part
    text += rnd.choice(SUFFIXES)
    if rnd.random() < 0.5:
        text = flip_case(text, rnd.getrandbits(60))
    if rnd.random() < 0.1:
        pos = rnd.randint(0, len(text))
        text = text[:pos] + any_char(rnd) + text[pos:]
    return rnd.choice(METHODS) + " " + text


def targets() -> st.SearchStrategy[tuple[str, str]]:
    """(method, request-target): Kratos' routes mangled with escapes, dot segments,
    repeated separators, case flips, absolute forms and stray characters."""
    return seeded(ROUTES, _target).map(lambda line: tuple(line.split(" ", 1)))  # type: ignore[arg-type,return-value]


# --- identifiers ----------------------------------------------------------------------------

IDENTIFIERS = [
    "alice@example.com", "Alice@Example.COM", "bob", "jörg@exämple.de", "ΟΔΥΣΣΕΥΣ", "Straße",
    "ǅemal", "ﬁx", "مرحبا", "שלום", "नमस्ते", "한국어", "l·l", "user١٢٣", "ＡＢＣ@example.com",
    "+14155552671", "+1 (415) 555-2671", "+44 20 7946 0958", "+49 30 901820",
    "+٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨", "ب+٤٤٢٠٧٩٤٦٠٩٥٨", "+1 800 FLOWERS", "alice+1@example.com",
    "+1-415-555-2671 x", "00 1 415 555 2671", "x",
]  # fmt: skip
IDENTIFIER_POOLS = [
    chars(range(0x200B, 0x2010), range(0x202A, 0x202F), range(0x2060, 0x2070), 0xFEFF, 0xAD,
          0x61C, 0x180E, 0xE0001, 0xE0041, 0x34F, 0xFE0F, 0x180B, 0xE0100),
    chars(range(0x00, 0x20), range(0x7F, 0xA0)),
    chars(range(0x300, 0x370), 0x1AB0, 0x20D0, 0x302A),
    chars(range(0xFF01, 0xFF5F), 0xFF9E, 0xFFE0),
    chars(0xFDD0, 0xFFFE, 0xFFFF, 0x1FFFE, 0xE000, 0xF8FF, 0xF0000, 0x378, 0x2FFFF, 0xE0080),
    chars(0xA0, 0x1680, 0x2000, 0x200A, 0x3000, 0x85, 0x20, 0x2028, 0x2029, 0x202F),
    chars(0xB7, 0x375, 0x5F3, 0x5F4, 0x660, 0x665, 0x6F0, 0x6F5, 0x30FB, 0x640, 0x7FA, 0x302E,
          0x3031),
    chars(range(0x1100, 0x1200, 7), 0x1161, 0x11A8, 0xAC00, 0x3164, 0xFFA0),
    chars(0x130, 0x131, 0x17F, 0x212A, 0x2126, 0x1E9E, 0xDF, 0x3C2, 0x3A3, 0x345, 0x390,
          0x1F80, 0xFB00, 0x1E9B, 0x149, 0x1C90, 0x13A0, 0xAB70),
    chars(0xFB01, 0x2460, 0xBD, 0x2167, 0x33A1, 0x1D400, 0x1F130, 0x2474, 0x2488, 0xB2),
    chars(range(0x30, 0x3A), 0x2B, 0xFF0B, 0x28, 0x29, 0x2D, 0x2E),
    chars(range(0x41, 0x5B), range(0x61, 0x7B), 0x40),
    chars(0x10041, 0xE0041, 0x20065, 0x10061, 0xF0041, 0x1099, 0x11099, 0x110BA, 0x11131,
          0x11127, 0x1D15E, 0x1D165),
    chars(0x627, 0x628, 0x5D0, 0x5D1, 0x661, 0x6F1, 0x200E, 0x200F, 0x202B),
    chars(0x391, 0x3C3, 0x1FB3, 0x915, 0x94D, 0x93F),
]  # fmt: skip


def _identifier(start: str, rnd: random.Random) -> str:
    text = list(start) if rnd.random() < 0.7 else []
    for _ in range(rnd.randint(0, 6)):
        char = any_char(rnd) if rnd.random() < 0.25 else rnd.choice(rnd.choice(IDENTIFIER_POOLS))
        text.insert(rnd.randint(0, len(text)), char)
    joined = "".join(text)
    if rnd.random() < 0.3:
        joined = flip_case(joined, rnd.getrandbits(60))
    if rnd.random() < 0.05:
        joined = " " * rnd.randint(400, 600) + joined
    return joined


def identifiers() -> st.SearchStrategy[str]:
    """Login identifiers with invisible, control, bidi, combining, full-width, unassigned,
    private-use, case-special and compatibility characters spliced in."""
    return seeded(IDENTIFIERS, _identifier)


# --- media types ----------------------------------------------------------------------------

TYPES = ["application", "APPLICATION", "Application", "applİcation", "multipart", "text",
         "applıcation", "\u212aapplication", "", "*", "app lication"]  # fmt: skip
SUBTYPES = ["json", "JSON", "Json", "x-www-form-urlencoded", "X-WWW-FORM-URLENCODED",
            "form-data", "FORM-DATA", "plain", "jſon", "json+x", "", "json/x", "ǰson",
            "x-www-form-urlencoded\u212a"]  # fmt: skip
PARAMS = ["", "", "; charset=utf-8", ";charset=UTF-8", '; charset="utf-8"', "; boundary=----x",
          '; boundary="a b"', "; a", ";", "; ;", "; a=b; a=c", "; a*=utf-8''x%20y",
          "; a*0=x; a*1=y", ", application/json", ",text/plain", '; a="unterminated',
          '; a="q\\"uote"', "; =x", "; a=", "; a=b c", "\t; a=b", "; a=b;"]  # fmt: skip
SPACES = ["", "", " ", "\t", "\u00a0", "\u3000", "\u2028", "\x0b", "\x85", "\u180e"]


def _content_type(kind: str, rnd: random.Random) -> str:
    text = rnd.choice(SPACES) + kind
    if rnd.random() < 0.9:
        text += "/" + rnd.choice(SUBTYPES)
    text += rnd.choice(SPACES)
    for _ in range(rnd.randint(0, 2)):
        text += rnd.choice(PARAMS)
    text += rnd.choice(SPACES)
    if rnd.random() < 0.1:
        pos = rnd.randint(0, len(text))
        text = text[:pos] + any_char(rnd) + text[pos:]
    return text


def content_types() -> st.SearchStrategy[str]:
    """Content-Type values around JSON, form and multipart: case, Unicode lower-casing
    traps, whitespace, parameters valid and not, lists."""
    return seeded(TYPES, _content_type)


# --- flow ids and queries -------------------------------------------------------------------

UUID_JUNK = ["", "", "-", "{", "}", " ", "g", "٣", "Ａ", "urn:uuid:", "URN:UUID:", "0", "\x00"]


FORMS = ["plain", "plain", "braced", "urn", "URN"]


def _flow_id(form: str, rnd: random.Random) -> str:
    digits = rnd.getrandbits(128).to_bytes(16, "big").hex()
    dashed = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
    body = rnd.choice([dashed, digits])
    if rnd.random() < 0.5:
        body = flip_case(body, rnd.getrandbits(60))
    text = {"plain": body, "braced": "{" + body + "}", "urn": "urn:uuid:" + body}.get(
        form, "URN:UUID:" + body
    )
    for _ in range(rnd.choice([0, 0, 0, 1, 2])):
        pos = rnd.randint(0, len(text))
        text = text[:pos] + rnd.choice(UUID_JUNK) + text[pos + rnd.randint(0, 1) :]
    return text


def flow_ids() -> st.SearchStrategy[str]:
    """Flow ids in every form gofrs/uuid accepts, and near misses."""
    return seeded(FORMS, _flow_id)


QUERY_PIECES = ["flow=", "flow", "Flow=", "&", "&", ";", "=", "+", "%2B", "%3D", "%26", "%zz",
                "%", "%4", "%66low", "x=1", "a;b=2", "flow=%41", "é", "%C3%A9", "%FF"]  # fmt: skip


def _query(first: str, rnd: random.Random) -> str:
    parts = [first] + [rnd.choice(QUERY_PIECES) for _ in range(rnd.randint(0, 7))]
    if rnd.random() < 0.5:
        parts.insert(rnd.randint(0, len(parts)), "flow=" + _flow_id("plain", rnd))
    return "".join(parts)


def queries() -> st.SearchStrategy[str]:
    """Raw query strings with repeated, escaped, semicolon-separated and broken pairs."""
    return seeded(QUERY_PIECES, _query)
