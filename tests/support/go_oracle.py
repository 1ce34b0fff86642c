"""The Go oracle (``tests/parity/oracle``): how Kratos reads a request, answered by the Go
packages Kratos is built from. Used by the parity suite and by the Kratos stand-in.

One long-lived process per :class:`GoOracle`; every call is one short pipe round trip
(JSON lines), so it may be called synchronously from inside an event loop. :meth:`GoOracle.many`
sends a whole batch before reading the answers, for the property tests.

The binary is built on first use with the Debian Go packages (``make tools`` installs them)
into ``.venv/go-oracle/<hash of the sources>/``, so repeated runs do not rebuild.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "tests" / "parity" / "oracle"
GOPATH = "/usr/share/gocode"
PACKAGES = (
    "golang-go golang-golang-x-text-dev golang-github-gofrs-uuid-dev "
    "golang-github-julienschmidt-httprouter-dev"
)


class OracleUnavailable(RuntimeError):
    """The oracle cannot be built or started (Go or its Debian packages are missing)."""


# --- answers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """What Kratos' public router does with a request.

    ``kind``: ``handler`` (served in place by ``handler``, e.g. ``"POST /self-service/login"``),
    ``redirect`` (``status`` 301/307, ``location``), ``not_found``, ``method_not_allowed``,
    ``options`` (httprouter's automatic OPTIONS answer), ``options_star`` (net/http answers
    ``OPTIONS *`` itself) or ``bad_request`` (Go's server refuses the request line).
    ``path`` is the decoded path after Kratos' clean-path middleware.
    """

    kind: str
    handler: str | None = None
    location: str | None = None
    status: int | None = None
    path: str | None = None
    decoded_path: str | None = None
    raw_query: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class MediaType:
    """``mime.ParseMediaType`` of a header value, and the body decoder ory/x decoderx picks
    (``"json"``, ``"form"`` or ``None`` = refused unread) in its current and older shape."""

    type: str
    ok: bool
    params: tuple[tuple[str, str], ...]
    decoder_new: str | None
    decoder_old: str | None


@dataclass(frozen=True, slots=True)
class Identifier:
    """Kratos' GracefulNormalization without the phone step (see :func:`kratos_identifier`)."""

    canonical: str
    normalized: str
    phone_input: str
    strict: bool


# --- wire helpers ---------------------------------------------------------------------------


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _put(question: dict[str, Any], name: str, value: str) -> None:
    # Lone surrogates (bytes that were not UTF-8, kept by surrogateescape) travel as hex.
    if _encodable(value):
        question[name] = value
    else:
        question[name + "_hex"] = value.encode("utf-8", "surrogateescape").hex()


def _get(answer: Mapping[str, Any], name: str) -> str:
    raw = answer.get(name + "_hex")
    if raw is not None:
        return bytes.fromhex(raw).decode("utf-8", "surrogateescape")
    return str(answer[name])


def _route(answer: Mapping[str, Any]) -> Route:
    return Route(
        kind=answer["kind"],
        handler=answer.get("handler"),
        location=_get(answer, "location") if "location" in answer else None,
        status=answer.get("status"),
        path=_get(answer, "path") if "path" in answer else None,
        decoded_path=_get(answer, "decoded_path") if "decoded_path" in answer else None,
        raw_query=answer.get("raw_query"),
        reason=answer.get("reason"),
    )


def _media_type(answer: Mapping[str, Any]) -> MediaType:
    return MediaType(
        type=_get(answer, "type"),
        ok=bool(answer["ok"]),
        params=tuple((k, v) for k, v in answer.get("params") or ()),
        decoder_new=answer["decoder_new"] or None,
        decoder_old=answer["decoder_old"] or None,
    )


def _identifier(answer: Mapping[str, Any]) -> Identifier:
    return Identifier(
        canonical=_get(answer, "canonical"),
        normalized=_get(answer, "normalized"),
        phone_input=_get(answer, "phone_input"),
        strict=bool(answer["strict"]),
    )


@dataclass(frozen=True, slots=True)
class LegacyIdentifier:
    """Older GracefulNormalization releases without the phone step (see
    :func:`kratos_legacy_identifiers`)."""

    v1: str
    v2: str
    v3: str
    v3_phone_input: str


def _legacy(answer: Mapping[str, Any]) -> LegacyIdentifier:
    return LegacyIdentifier(
        v1=_get(answer, "v1"),
        v2=_get(answer, "v2"),
        v3=_get(answer, "v3"),
        v3_phone_input=_get(answer, "v3_phone_input"),
    )


def _one(op: str, **fields: str) -> dict[str, Any]:
    question: dict[str, Any] = {"op": op}
    for name, value in fields.items():
        _put(question, name, value)
    return question


# op -> (argument names, answer decoder)
_OPS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Any]]] = {
    "route": (("method", "target"), _route),
    "media_type": (("value",), _media_type),
    "lower": (("value",), lambda a: _get(a, "value")),
    "identifier": (("value",), _identifier),
    "uuid": (("value",), lambda a: a["value"]),
    "query_get": (("query", "name"), lambda a: _get(a, "value")),
    "clean_path": (("value",), lambda a: (_get(a, "httprouter"), _get(a, "path"))),
    "unescape": (("value",), lambda a: _get(a, "value") if a["ok"] else None),
    "identifier_legacy": (("value",), _legacy),
    "nfkc": (("value",), lambda a: _get(a, "value")),
    "tables": (("name",), lambda a: (a.get("version"), [tuple(r) for r in a["ranges"]])),
}


# --- building -------------------------------------------------------------------------------


def _sources_digest(go: str) -> str:
    digest = hashlib.sha256()
    version = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    digest.update(version.stdout.encode())
    for path in sorted(SOURCES.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    venv = ROOT / ".venv"
    if venv.is_dir():
        return venv / "go-oracle"
    return Path(tempfile.gettempdir()) / f"kratos-hooks-go-oracle-{os.getuid()}"


def build() -> Path:
    """The oracle binary for the current sources, built when it is not cached yet."""
    go = shutil.which("go")
    if go is None:
        raise OracleUnavailable(
            f"`go` is not installed: the parity suite needs Debian's {PACKAGES} "
            "(`make tools` installs them)"
        )
    cache = _cache_root() / _sources_digest(go)
    binary = cache / "oracle"
    if binary.is_file():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": GOPATH,
        "GOCACHE": str(_cache_root() / "gocache"),
        "CGO_ENABLED": "0",
    }
    partial = cache / f"oracle.{os.getpid()}.tmp"
    result = subprocess.run(
        [go, "build", "-o", str(partial), "."],
        cwd=SOURCES,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise OracleUnavailable(
            f"building the Go oracle failed (are {PACKAGES} installed?):\n{result.stderr}"
        )
    partial.replace(binary)  # atomic: a concurrent run sees the old name or the whole file
    return binary


# --- the process ----------------------------------------------------------------------------


class GoOracle:
    """A running oracle. Not thread-safe by itself: :func:`shared` serialises callers."""

    def __init__(self, binary: Path | None = None) -> None:
        self._proc = subprocess.Popen(
            [str(binary or build())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin = self._proc.stdin
        self._stdout = self._proc.stdout
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._stdout.close()

    def __enter__(self) -> GoOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # One round trip per call.

    def _read(self) -> dict[str, Any]:
        line = self._stdout.readline()
        if not line:
            raise OracleUnavailable(f"the Go oracle exited ({self._proc.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise ValueError(f"oracle: {answer['error']}")
        return answer

    def _ask(self, question: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._stdin.write(json.dumps(question).encode() + b"\n")
            return self._read()

    def call(self, op: str, **fields: str) -> Any:
        names, decode = _OPS[op]
        if set(fields) != set(names):
            raise TypeError(f"{op} takes {names}")
        return decode(self._ask(_one(op, **fields)))

    def route(self, method: str, target: str) -> Route:
        result: Route = self.call("route", method=method, target=target)
        return result

    def media_type(self, value: str) -> MediaType:
        result: MediaType = self.call("media_type", value=value)
        return result

    def lower(self, value: str) -> str:
        result: str = self.call("lower", value=value)
        return result

    def identifier(self, value: str) -> Identifier:
        result: Identifier = self.call("identifier", value=value)
        return result

    def uuid(self, value: str) -> str | None:
        result: str | None = self.call("uuid", value=value)
        return result

    def query_get(self, query: str, name: str) -> str:
        result: str = self.call("query_get", query=query, name=name)
        return result

    def clean_path(self, value: str) -> tuple[str, str]:
        """(``httprouter.CleanPath``, ``path.Clean``) of a decoded path."""
        result: tuple[str, str] = self.call("clean_path", value=value)
        return result

    def unescape(self, value: str) -> str | None:
        """``url.PathUnescape``, None on a bad escape."""
        result: str | None = self.call("unescape", value=value)
        return result

    def identifier_legacy(self, value: str) -> LegacyIdentifier:
        result: LegacyIdentifier = self.call("identifier_legacy", value=value)
        return result

    def nfkc(self, value: str) -> str:
        """x/text's ``norm.NFKC`` (see ``proxy.guard.go_nfkc``)."""
        result: str = self.call("nfkc", value=value)
        return result

    def tables(self, name: str) -> tuple[str | None, list[tuple[int, int]]]:
        """Unicode facts of the Go build: ``"assigned"`` (version, ranges of code points
        with a category other than Cn) or ``"profile_allowed"`` (Kratos' identifier
        profile's keep set)."""
        result: tuple[str | None, list[tuple[int, int]]] = self.call("tables", name=name)
        return result

    # Batches: written by a helper thread while this one reads, so neither pipe can fill up.

    def many(self, op: str, args: Sequence[Mapping[str, str]]) -> list[Any]:
        """``[call(op, **a) for a in args]`` in one batch; the same answers, much faster."""
        names, decode = _OPS[op]
        payload = b"".join(
            json.dumps(_one(op, **{n: a[n] for n in names})).encode() + b"\n" for a in args
        )
        with self._lock:
            failure: list[BaseException] = []

            def write() -> None:
                try:
                    self._stdin.write(payload)
                except BaseException as exc:  # reported below, after the reads
                    failure.append(exc)

            writer = threading.Thread(target=write, name="go-oracle-writer", daemon=True)
            writer.start()
            try:
                answers = [self._read() for _ in args]
            finally:
                writer.join()
            if failure:
                raise OracleUnavailable("writing to the Go oracle failed") from failure[0]
        return [decode(a) for a in answers]


_shared: GoOracle | None = None
_shared_lock = threading.Lock()


def shared() -> GoOracle:
    """The process-wide oracle, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GoOracle()
            atexit.register(_shared.close)
        return _shared


def kratos_identifier(answer: Identifier) -> str:
    """Kratos' whole GracefulNormalization, completing the oracle's answer with its phone
    step: ``phonenumbers.Parse(canonical, "")`` valid → E.164 of the phone profile's form.
    Python's ``phonenumbers`` is a port of the same libphonenumber as Go's."""
    number = _phone(answer.canonical)
    if number is None:
        return answer.normalized
    again = _phone(answer.phone_input)
    return again if again is not None else answer.phone_input


def kratos_legacy_identifiers(raw: str, answer: LegacyIdentifier) -> tuple[str, str, str]:
    """What the three older GracefulNormalization releases make of ``raw``: the first two
    parsed the raw value as a phone number, the third its NFKC-without-Cf form."""
    phone = _phone(raw)
    v3_phone = _phone(answer.v3_phone_input)
    return (
        phone if phone is not None else answer.v1,
        phone if phone is not None else answer.v2,
        v3_phone if v3_phone is not None else answer.v3,
    )


def _phone(value: str) -> str | None:
    import phonenumbers

    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
