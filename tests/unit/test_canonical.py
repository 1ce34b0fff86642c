"""The request as Kratos reads it: paths, queries and flow ids (pure functions)."""

from __future__ import annotations

import pytest

from proxy.kernel.canonical import (
    canonical_path,
    canonical_uuid,
    clean_path,
    parse_query,
    query_get,
    request_path,
    route_key,
)

FLOW = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


@pytest.mark.parametrize(
    ("target", "split"),
    [
        ("/self-service/login?flow=x", ("/self-service/login", "flow=x")),
        ("/a?b?c", ("/a", "b?c")),
        ("/a?", ("/a", "")),
        ("//a/b", ("//a/b", "")),  # no scheme: no authority either
        ("http://evil.example/echo", ("/echo", "")),
        ("HTTPS://u:p@h:4433/a?x", ("/a", "x")),
        ("http://[::1]:80/a", ("/a", "")),
        ("http://h", ("", "")),
        ("http://h?x=1", ("", "x=1")),
        ("x:/self-service/login", ("/self-service/login", "")),
        ("mailto:alice", ("", "")),
        ("/a#b", ("/a#b", "")),  # a request-target has no fragment: '#' is path
        ("*", ("*", "")),
    ],
)
def test_request_path_splits_as_go_does(target: str, split: tuple[str, str]) -> None:
    assert request_path(target) == split


@pytest.mark.parametrize(
    "target", ["", "self-service/login", ":/a", "/a%zz", "/a%4", "/a\x00", "/a\tb", "http://h h/"]
)
def test_request_path_refuses_what_go_refuses(target: str) -> None:
    assert request_path(target) is None


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/self-service/login", "/self-service/login"),
        ("//self-service/login", "/self-service/login"),
        ("/self-service/./login", "/self-service/login"),
        ("/x/../self-service/login", "/self-service/login"),
        ("/self-service/%2e/login", "/self-service/login"),
        ("/self-service/login/../login", "/self-service/login"),
        ("/self-service%2Flogin", "/self-service/login"),
        ("/self-service%2flogin", "/self-service/login"),
        ("/%2e%2e/self-service/login", "/self-service/login"),
        ("/self-service/login/", "/self-service/login/"),  # redirected by Kratos, kept
        ("/a/b/.", "/a/b/"),
        ("/a/b/..", "/a"),
        ("/..", "/"),
        ("", "/"),
        ("/a%25b", "/a%b"),
        ("/a%00b", "/a\x00b"),
        ("/a%ffb", "/a\udcffb"),
        ("/a%C4%B0", "/aİ"),
    ],
)
def test_canonical_path(raw: str, path: str) -> None:
    assert canonical_path(raw) == path


@pytest.mark.parametrize("raw", ["/a%zz", "/a%", "/a%2", "/a\x7f"])
def test_canonical_path_refuses_what_go_refuses(raw: str) -> None:
    assert canonical_path(raw) is None


@pytest.mark.parametrize(
    ("path", "clean"),
    [("a/b", "/a/b"), ("/a//b//", "/a/b/"), ("/a/./b/./", "/a/b/"), ("/.../a", "/.../a")],
)
def test_clean_path_is_httprouters(path: str, clean: str) -> None:
    assert clean_path(path) == clean


def test_route_key_folds_what_kratos_redirects() -> None:
    keys = {
        route_key(p) for p in ("/self-service/login", "/Self-Service/LOGIN", "/self-service/login/")
    }
    assert keys == {"/self-service/login"}
    assert route_key("/self-servİce/\u212aey") == "/self-service/key"
    assert route_key("/") == "/"
    assert route_key("/self-service/logout") != route_key("/self-service/login")


def test_parse_query_is_go_parse_query() -> None:
    assert parse_query("a=1&a=2&b=x+y%2B&c") == {"a": ["1", "2"], "b": ["x y+"], "c": [""]}
    # A pair with ";" or a malformed escape is dropped; the rest is kept.
    assert parse_query("a=1;b=2&c=%zz&d=%41&=e&&") == {"d": ["A"], "": ["e"]}


@pytest.mark.parametrize(
    ("query", "value"),
    [
        (f"flow={FLOW}", FLOW),
        (f"flow={FLOW}&flow=other", FLOW),
        (f"x=1;flow=evil&flow={FLOW}", FLOW),
        (f"flow=%zz&flow={FLOW}", FLOW),
        ("flow=a+b", "a b"),
        ("Flow=x", ""),
        ("flow", ""),
        ("", ""),
    ],
)
def test_query_get_is_the_first_value_kratos_reads(query: str, value: str) -> None:
    assert query_get(query, "flow") == value


@pytest.mark.parametrize(
    "form",
    [
        FLOW,
        FLOW.upper(),
        "{" + FLOW + "}",
        "urn:uuid:" + FLOW,
        "URN:UUID:" + FLOW,  # refused by gofrs 4.x; accepting it only merges keys
        FLOW.replace("-", ""),
        "{" + FLOW.replace("-", "").upper() + "}",
        "urn:uuid:" + FLOW.replace("-", ""),
    ],
)
def test_canonical_uuid_forms(form: str) -> None:
    assert canonical_uuid(form) == FLOW


@pytest.mark.parametrize(
    "bad",
    [
        "",
        FLOW[:-1],
        FLOW + "0",
        " " + FLOW,
        FLOW.replace("-", "_"),
        "{" + FLOW,
        "urn:uuid:{" + FLOW + "}",
        "g" * 32,
        "٣" * 32,
        "6ba7b810-9dad-11d1-80b4-00c04fd430c\uff18",
    ],
)
def test_canonical_uuid_refusals(bad: str) -> None:
    assert canonical_uuid(bad) is None
