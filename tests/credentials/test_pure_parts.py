"""Pure parts of the feature: the hook table's prefixes, the page's words, CSRF, the notices'
envelope, leak-report authentication."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from handlers.credentials import page_text
from handlers.credentials.csrf import Csrf, cross_site
from handlers.credentials.leaks import authenticated, candidates
from handlers.hooks.token_events import token_envelope
from proxy.kernel.bus import TokenNotice
from proxy.kernel.hooked import HookTable, Reply
from proxy.kernel.view import view_of


async def _hook(request: object) -> Reply:
    return Reply.own(200)


async def _other(request: object) -> Reply:
    return Reply.own(204)


def test_a_prefix_hooks_its_subtree_and_exact_routes_win() -> None:
    table = HookTable()
    table.add_prefix("GET", "/tokens", _hook)
    table.add("GET", "/tokens/exact", _other)
    for path in ("/tokens", "/tokens/", "/TOKENS/x", "//tokens/./a/b", "/tokens%2Fx"):
        assert table.get("GET", view_of(path, "")) is _hook, path
    assert table.get("GET", view_of("/tokens/exact", "")) is _other
    for path in ("/tokensx", "/token", "/self-service/login", "/"):
        assert table.get("GET", view_of(path, "")) is None, path
    assert table.get("POST", view_of("/tokens/x", "")) is None
    with pytest.raises(ValueError, match="overlaps"):
        table.add_prefix("GET", "/tokens/api", _other)
    with pytest.raises(ValueError, match="not a prefix"):
        table.add_prefix("GET", "/", _other)
    table.add_prefix("POST", "/tokens", _hook)
    assert ("GET", "/tokens/**") in list(table)


@pytest.mark.parametrize(
    ("offset", "text"),
    [(5, "just now"), (61, "1 minute ago"), (7200, "2 hours ago"), (86400 * 3, "3 days ago")],
)
def test_ago(offset: float, text: str) -> None:
    assert page_text.ago(1_000_000.0 - offset, 1_000_000.0) == text


def test_expiry_and_days() -> None:
    now = 1_700_000_000.0  # Nov 14, 2023
    assert page_text.expiry(None, now) == "Never"
    assert page_text.expiry(now + 47 * 86400 + 5, now) == "Dec 31, 2023 (47 days)"
    assert page_text.expiry(now - 1, now) == "Expired on Nov 14, 2023"
    assert page_text.expiry(now + 3600, now) == "Nov 14, 2023 (less than a day)"


def test_expiry_choices() -> None:
    now = 1_700_000_000.0
    kw = {"presets": ("7", "30"), "allow_never": False, "max_days": 90, "now": now}
    assert page_text.expires_from("30", "", **kw) == now + 30 * 86400  # type: ignore[arg-type]
    assert page_text.expires_from("never", "", **kw) == "Tokens must expire."  # type: ignore[arg-type]
    assert page_text.expires_from("never", "", **kw | {"allow_never": True}) is None  # type: ignore[arg-type]
    assert page_text.expires_from("365", "", **kw) == "Choose when the token expires."  # type: ignore[arg-type]
    assert page_text.expires_from("date", "2023-12-01", **kw) == 1_701_475_200.0  # type: ignore[arg-type]
    assert "future" in str(page_text.expires_from("date", "2023-01-01", **kw))  # type: ignore[arg-type]
    assert "within 90" in str(page_text.expires_from("date", "2025-01-01", **kw))  # type: ignore[arg-type]
    assert "YYYY" in str(page_text.expires_from("date", "soon", **kw))  # type: ignore[arg-type]


def test_csrf_is_bound_to_the_session_and_the_site() -> None:
    csrf = Csrf(b"k" * 32)
    token = csrf.token("session-1")
    assert csrf.valid("session-1", token) and not csrf.valid("session-2", token)
    assert not csrf.valid("", csrf.token("")) and not Csrf(b"x" * 32).valid("session-1", token)
    assert not cross_site({"Host": "a.example", "Sec-Fetch-Site": "same-origin"})
    assert cross_site({"Host": "a.example", "Sec-Fetch-Site": "cross-site"})
    assert cross_site({"Host": "a.example", "Sec-Fetch-Site": "same-site"})
    assert cross_site({"Host": "a.example", "Origin": "https://b.example"})
    assert not cross_site({"Host": "a.example", "Origin": "https://a.example"})
    assert cross_site({"Host": "a.example", "Origin": "null"})
    assert not cross_site({"Host": "a", "Origin": "null", "Sec-Fetch-Site": "same-origin"})


def test_leak_reports_are_authenticated_by_secret_or_signature() -> None:
    body = b'{"tokens": []}'
    signed = hmac.new(b"s2", body, hashlib.sha256).hexdigest()
    assert authenticated(("s1", "s2"), {"Authorization": "Bearer s1"}, body)
    assert authenticated(("s1", "s2"), {"X-Signature-256": f"sha256={signed}"}, body)
    assert not authenticated(("s1",), {"X-Signature-256": f"sha256={signed}"}, body)
    assert not authenticated(("s1",), {"Authorization": "Bearer s"}, body)
    assert not authenticated(("s1",), {}, body)
    assert candidates([{"token": "a"}, "b"]) == ["a", "b"]
    assert candidates({"tokens": ["a"]}) == ["a"]
    assert candidates({"x": 1}) is None and candidates([{"token": 3}]) is None


def test_the_notice_envelope_is_the_welcome_events_shape() -> None:
    notice = TokenNotice(
        "leaked", "tok_x", "pat", "id-1", "CLI", "pat_…abcd", ("read:users",), None, 0.0, "gist"
    )
    user = {"id": "id-1", "email": "a@example.com", "type": "user"}
    doc = token_envelope(notice, pattern="TOKEN_LEAKED", platform_url="https://p/", user=user)
    assert doc["pattern"] == "TOKEN_LEAKED" and doc["data"]["eventType"] == "TOKEN_LEAKED"
    assert doc["data"]["recipients"] == [user] and doc["data"]["triggeredBy"] == user
    assert doc["data"]["token"]["revokedReason"] == "leaked"
    assert doc["data"]["platform"] == {"url": "https://p"}
    key = token_envelope(
        TokenNotice("expiring", "tok_y", "key", "org-1", "CI", "key_…", (), 5.0, 0.0),
        pattern="TOKEN_EXPIRING",
        platform_url="https://p",
        user=None,
    )
    assert key["data"]["recipients"] == [] and key["data"]["owner"] == {
        "type": "organization",
        "id": "org-1",
    }
