"""Who an attempt is about: the normalised identifier, the client's address group, and the
keyed hashes that name their buckets. Pure functions, no I/O.

Identifiers are never stored or logged in clear: a bucket is named by an HMAC of the
normalised identifier under ``BACKOFF_SECRET``, so a dump of Redis reveals no account names
and cannot be reversed by hashing a list of guesses without the secret.

The normalised identifier must merge at least every pair of identifiers Kratos resolves to
one account (``KRATOS.md``, "Identifier normalisation"): an identifier Kratos merges with
``alice`` but the guard does not gets fresh buckets — a bypass. The converse, two accounts
sharing buckets, only makes the guard stricter. So :func:`normalise_identifier` is Kratos'
``GracefulNormalization`` made coarser on purpose, step by step:

1. Kratos trims (``strings.TrimSpace``) first and bounds nothing; we trim with Python's wider
   whitespace set, and bound the length only at the very end (``MAX_IDENTIFIER``).
2. Kratos' PRECIS email profile folds width, lower-cases and applies NFKC; we apply NFKC,
   then **casefold** (coarser than lower-casing: ``ß`` = ``ss``, final sigma = sigma), then
   NFKC again, and drop a combining dot above (U+0307) NFKC leaves standing, so that ``İ``
   is ``i`` as Go's ``strings.ToLower`` (older Kratos releases) makes it, not only ``i̇`` as
   ``cases.Lower`` does. NFKC is x/text's (``go_nfkc``): it composes a supplementary-plane
   starter with a mark by their low 16 bits (``U+E0041 U+0302`` is ``Â``), and so do we.
3. Kratos refuses, and in graceful mode strips, every code point the profile does not allow:
   bidi controls, default-ignorables, Cc/Cf/Co/Cs, noncharacters, unassigned code points,
   and PRECIS' own disallowed and context-dependent ones. We strip every code point outside
   the profile's keep set (``identifier_table``, generated from x/text by the Go oracle)
   **wherever it stands**: also the contextual ones (middle dot, Greek keraia, Hebrew geresh,
   Arabic-Indic digits) the strict profile keeps in the right context, and code points
   assigned after Unicode 13, which newer Kratos builds keep. We strip before casefolding
   (as Kratos strips before it lower-cases: what a removal brings together is reordered
   and composed first) and after, with NFKC from Python's own tables, as a Kratos built with
   newer Unicode does, so compatibility characters newer than 13 fold to what they stand for.
4. Kratos then lower-cases and normalises again; we repeat steps 2-3 until nothing changes
   (a removal can bring a base letter and a combining mark together).
5. Kratos turns a string ``phonenumbers.Parse(value, "")`` accepts as a valid number into
   E.164; so do we, with the ``phonenumbers`` port of the same libphonenumber, on a close
   emulation of Kratos' canonical form (its Bidi rule and context rule for Arabic-Indic
   digits included) and on ours. Releases before the PRECIS profile parsed the raw value;
   where they read a number and the current release does not, or reads another one (only
   Arabic-Indic digits, which libphonenumber reads as digits and the profile strips, or a
   prefix NFKC turns into digits, such as ``½``), the key is the number one of them reads:
   a phone account is what such a spelling reaches.

Plain ASCII, the common case, takes a shortcut with the same result: controls removed,
trimmed, lower-cased, phone numbers only when a ``+`` is present (Kratos parses without a
default region, so nothing else can be a valid number).
"""

from __future__ import annotations

import ipaddress
import secrets
import unicodedata
from bisect import bisect_right
from functools import lru_cache

import phonenumbers

from proxy.guard.go_nfkc import nfkc as _nfkc
from proxy.guard.identifier_table import RANGES
from proxy.kernel.digests import Hmac

# Ordinary login identifiers are short; a longer normalised one is cut, so a megabyte
# "identifier" names no bigger a key than a normal one (sharing a bucket with another
# identifier with the same first 512 characters is over-merging: harmless).
MAX_IDENTIFIER = 512

# Fixpoint bound for steps 2-4: no input has been seen to need more than two rounds.
_ROUNDS = 4

# Go's unicode.IsSpace, what Kratos' strings.TrimSpace trims before anything else.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)

# ASCII controls: Kratos' profile refuses them, graceful mode strips them.
_ASCII_CONTROLS = dict.fromkeys([*range(0x20), 0x7F])


def _parse_ranges(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    pairs = [item.split("-") for item in text.split()]
    return tuple(int(a, 16) for a, _ in pairs), tuple(int(b, 16) for _, b in pairs)


_KEEP_FIRST, _KEEP_LAST = _parse_ranges(RANGES)


@lru_cache(maxsize=8192)
def _kept(char: str) -> bool:
    """Kratos' identifier profile allows ``char`` (bounded cache: per-character bisect)."""
    point = ord(char)
    i = bisect_right(_KEEP_FIRST, point) - 1
    return i >= 0 and point <= _KEEP_LAST[i]


def _strip_disallowed(text: str) -> str:
    return "".join([c for c in text if (" " <= c < "\x7f") or _kept(c)])


def _fold(text: str) -> str:
    """Steps 2-4 of the module docstring on a non-ASCII string.

    Disallowed code points go before casefolding as well as after: Kratos strips them before
    it lower-cases, and what they separated is then reordered and composed by NFKC (a
    combining mark or a ``ᾀ`` folds differently on either side of the gap). U+0307 left
    standing after NFKC (``İ`` casefolded, or a dot NFKC could not compose) is dropped, so
    ``İ`` = ``i`` whatever marks follow it.
    """
    for _ in range(_ROUNDS):
        folded = _nfkc(_strip_disallowed(_nfkc(text)))
        folded = _strip_disallowed(_nfkc(folded.casefold())).replace("\u0307", "")
        folded = folded.strip()
        if folded == text:
            break
        text = folded
    return text


# Kratos' strict profile keeps these digits in a string that passes the Bidi rule and holds
# one kind of them only (RFC 5892 CONTEXTO rules 8 and 9); graceful mode strips them.
_ARABIC_INDIC = frozenset(map(chr, range(0x660, 0x66A)))
_EXTENDED_ARABIC_INDIC = frozenset(map(chr, range(0x6F0, 0x6FA)))
_ARABIC_DIGITS = _ARABIC_INDIC | _EXTENDED_ARABIC_INDIC

# libphonenumber's plus signs, and what NFKC turns into one: a number without one cannot be
# valid when no default region is given.
_PLUS = frozenset("+\uff0b\u207a\u208a\ufb29\ufe62")

# RFC 5893 section 2, as a state machine: the classes each state accepts, and where they lead.
_RTL_SET = frozenset({"R", "AL", "AN"})
_BIDI: dict[str, tuple[tuple[frozenset[str], str], ...]] = {
    "start": ((frozenset({"L"}), "ltr_end"), (frozenset({"R", "AL"}), "rtl_end")),
    "rtl": (
        (frozenset({"R", "AL", "EN", "AN"}), "rtl_end"),
        (frozenset({"ES", "CS", "ET", "ON", "BN", "NSM"}), "rtl"),
    ),
    "rtl_end": (
        (frozenset({"R", "AL", "EN", "AN", "NSM"}), "rtl_end"),
        (frozenset({"ES", "CS", "ET", "ON", "BN"}), "rtl"),
    ),
    "ltr": (
        (frozenset({"L", "EN"}), "ltr_end"),
        (frozenset({"ES", "CS", "ET", "ON", "BN", "NSM"}), "ltr"),
    ),
    "ltr_end": (
        (frozenset({"L", "EN", "NSM"}), "ltr_end"),
        (frozenset({"ES", "CS", "ET", "ON", "BN"}), "ltr"),
    ),
}


def _bidi_rule(text: str) -> bool:
    """The Bidi rule as x/text's bidirule applies it: European and Arabic digits never mix,
    and the string must end in an accepting state whether or not it is right-to-left."""
    state, seen = "start", set()
    for char in text:
        cls = unicodedata.bidirectional(char) or "L"
        seen.add(cls)
        if "EN" in seen and "AN" in seen:
            return False
        for accepted, target in _BIDI.get(state, ()):
            if cls in accepted:
                state = target
                break
        else:
            state = "invalid"
            if seen & _RTL_SET:
                return False
    return state in ("start", "ltr_end", "rtl_end")


def _strict_profile(text: str) -> bool:
    """Kratos' identifier profile accepts ``text`` as it is (no graceful stripping)."""
    has_arabic = has_extended = False
    for char in text:
        if char in _ARABIC_INDIC:
            has_arabic = True
        elif char in _EXTENDED_ARABIC_INDIC:
            has_extended = True
        elif not (" " <= char < "\x7f" or _kept(char)):
            return False
    return bool(text) and not (has_arabic and has_extended) and _bidi_rule(text)


def _kratos_canonical(raw: str) -> str:
    """Close to Kratos' own canonical form: what its ``phonenumbers.Parse`` sees, so a
    number it accepts is accepted here too (only the phone-number step uses it)."""
    text = raw.strip(_GO_SPACE)
    strict = _nfkc(_nfkc(text).lower())
    if _strict_profile(strict):
        return strict
    return _strip_disallowed(_nfkc(text)).lower()


def _e164(text: str) -> str | None:
    if "+" not in text:  # no default region: only an international number can be valid
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalise_identifier(raw: str) -> str:
    """The guard's key for a login identifier: one for every spelling Kratos resolves to the
    same account (``ALICE@example.com``, `` alice@example.com``, ``alice\u200b@example.com``,
    full-width ``alice``, ``+1 (415) 555-2671`` = ``+14155552671``), and possibly for some
    it does not (see the module docstring)."""
    if raw.isascii():
        text = raw if raw.isprintable() else raw.translate(_ASCII_CONTROLS)
        key = text.strip().lower()
        phone = _e164(key)
    else:
        key = _fold(raw)
        phone = _phone_number(raw, key)
    return (phone or key)[:MAX_IDENTIFIER]


def _phone_number(raw: str, key: str) -> str | None:
    """E.164 when a Kratos release reads ``raw`` as a valid phone number.

    The current release parses its canonical form; releases before the PRECIS profile parsed
    the raw value (or its NFKC form without format characters). They disagree where NFKC
    makes digits of a prefix libphonenumber skipped (``½+49…``) and on Arabic-Indic digits,
    which libphonenumber reads as digits and the profile strips outside right-to-left text.
    A number any release reads wins over no number (a phone account is what such spellings
    reach); with Arabic-Indic digits the older reading, the number the user typed, wins.
    """
    if _PLUS.isdisjoint(raw):
        return None  # no default region: only an international number can be valid
    # Trimmed first, as every release trims before it keys an account: libphonenumber
    # refuses inputs over 250 characters, so padding must not hide a number (a key must not
    # change when an identifier is trimmed).
    stripped = raw.strip(_GO_SPACE)
    legacy = _first_number(stripped, _without_format(stripped))
    if legacy is not None and not _ARABIC_DIGITS.isdisjoint(_nfkc(raw)):
        return legacy
    return _first_number(_kratos_canonical(raw), key) or legacy


def _first_number(first: str, second: str) -> str | None:
    number = _e164(first)
    if number is None and second != first:
        number = _e164(second)
    return number


def _without_format(raw: str) -> str:
    """NFKC without format characters (Cf): what Kratos releases before the PRECIS profile
    canonicalised identifiers to."""
    text = _nfkc(raw)
    return "".join([c for c in text if unicodedata.category(c) != "Cf"])


@lru_cache(maxsize=4096)
def address_group(ip: str) -> str:
    """The unit an address is judged as: IPv4 itself, IPv6 per /64 (one subscriber's prefix).
    Cached (bounded): ``ipaddress`` parses in Python, a few µs of every guarded request."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip  # a unix socket or test transport: the peer text is the best we have
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# Made at import, before ``WORKERS`` forks: the workers of one server share it (replicas and
# restarts do not — that is what ``BACKOFF_SECRET`` is for).
PROCESS_SECRET = secrets.token_hex(32)


class Keyer:
    """Names buckets with an HMAC under the server secret (hex, 128 bits)."""

    def __init__(self, secret: str) -> None:
        self._hmac = Hmac(secret.encode())

    def _mac(self, kind: str, value: str) -> str:
        return self._hmac.hex(f"{kind}\x00{value}".encode())[:32]

    def identifier(self, normalised: str) -> str:
        return self._mac("identifier", normalised)

    def address(self, group: str) -> str:
        return self._mac("address", group)

    def subject(self, kind: str, value: str) -> str:
        """Attempts not keyed by an identifier (a second factor): by session or flow."""
        return self._mac(kind, value)
