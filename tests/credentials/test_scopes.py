"""Scope matching and the catalogue: a table of cases."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from handlers.credentials.catalogue import load_catalogue, parse_catalogue
from handlers.credentials.scopes import (
    DEFAULT_CATALOGUE,
    effective_pat_scopes,
    grants,
    pat_grants,
)
from proxy.kernel.tokens import valid_scope


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        (["read:users"], "read:users", True),
        (["read:users"], "write:users", False),
        (["read:users"], "read:resources", False),
        (["read:*"], "read:users", True),
        (["read:*"], "read:resources", True),
        (["read:*"], "write:users", False),
        (["admin:*"], "admin:billing", True),
        (["admin:*"], "read:users", False),  # admin:* is every admin action, not every action
        (["read:users", "read:resources"], "read:*", False),  # parts do not add up to a wildcard
        (["read:*"], "read:*", True),
        ([], "read:users", False),
        (["read:users", "write:resources"], "write:resources", True),
    ],
)
def test_grants(held: list[str], required: str, expected: bool) -> None:
    assert grants(held, required) is expected


@pytest.mark.parametrize(
    ("roles", "held", "required", "expected"),
    [
        ([], ["read:users"], "read:users", True),
        ([], ["delete:users"], "delete:users", False),  # the owner may not hold it
        (["admin"], ["delete:users"], "delete:users", True),
        ([], ["admin:*"], "admin:team", False),
        (["admin"], ["admin:*"], "admin:team", True),
        (["editor"], ["read:*"], "read:users", True),
        ([], ["read:*"], "read:unlisted", True),  # held through its wildcard's entry
        ([], ["write:unlisted"], "write:unlisted", False),  # unknown to the catalogue
    ],
)
def test_a_pat_never_goes_beyond_its_owners_roles(
    roles: list[str], held: list[str], required: str, expected: bool
) -> None:
    assert pat_grants(DEFAULT_CATALOGUE, held, roles, required) is expected


def test_effective_pat_scopes_drop_what_the_owner_lost() -> None:
    held = ["read:users", "admin:billing", "admin:*"]
    assert effective_pat_scopes(DEFAULT_CATALOGUE, held, ["admin"]) == tuple(held)
    assert effective_pat_scopes(DEFAULT_CATALOGUE, held, []) == ("read:users",)


def test_the_page_offers_what_the_roles_allow() -> None:
    plain = [s.name for s in DEFAULT_CATALOGUE.offered_to([])]
    admin = [s.name for s in DEFAULT_CATALOGUE.offered_to(["admin"])]
    assert "admin:*" not in plain and "delete:users" not in plain and "read:*" in plain
    assert set(plain) < set(admin) and "admin:*" in admin


@pytest.mark.parametrize(
    ("scope", "ok"),
    [
        ("read:users", True),
        ("read:*", True),
        ("admin:team.members", True),
        ("read", False),
        ("Read:users", False),
        ("read:users:extra", False),
        ("*:*", False),
        ("read: users", False),
    ],
)
def test_scope_names(scope: str, ok: bool) -> None:
    assert valid_scope(scope) is ok


def test_a_catalogue_file_is_read_and_checked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "scopes.toml"
    path.write_text(
        '[[scopes]]\nname = "read:docs"\ndescription = "Read documents"\n\n'
        '[[scopes]]\nname = "admin:*"\ndescription = "Everything admin"\nroles = ["ops"]\n'
    )
    catalogue = load_catalogue(str(path))
    assert [s.name for s in catalogue.scopes] == ["read:docs", "admin:*"]
    assert catalogue.may_hold(["ops"], "admin:x") and not catalogue.may_hold([], "admin:x")
    assert load_catalogue("") is DEFAULT_CATALOGUE
    for text, message in (
        ('[[scopes]]\nname = "READ"\n', "field 'name'"),
        ('[[scopes]]\nname = "read:a"\n[[scopes]]\nname = "read:a"\n', "used twice"),
        ('[[scopes]]\nname = "read:a"\nroles = "admin"\n', "field 'roles'"),
        ('[[scopes]]\nname = "read:a"\ntypo = 1\n', "name, description and roles only"),
        ("scopes = 3\n", "only [[scopes]]"),
    ):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            parse_catalogue(text, "x.toml")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_catalogue(str(tmp_path / "missing.toml"))
