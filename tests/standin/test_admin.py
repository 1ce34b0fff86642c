"""The admin identity API."""

from __future__ import annotations

import pytest
from yarl import URL

from tests.kratos_standin import StandinState, validate

from .conftest import ALICE, Client
from .helpers import json_of


def alice(state: StandinState) -> str:
    identity_id = state.find_by_identifier(ALICE[0])
    assert identity_id is not None
    return identity_id


async def test_list_pages_with_link_headers(admin: Client, state: StandinState) -> None:
    for n in range(3):
        state.add_identity(f"user{n}@example.com", "pw")
    seen: list[str] = []
    url: str | None = "/admin/identities?page_size=2"
    pages = 0
    while url is not None:
        resp = await admin.get(url)
        assert resp.status == 200
        body = await json_of(resp)
        for item in body:
            validate("identity", item)
        seen += [i["id"] for i in body]
        pages += 1
        links = resp.links
        assert "first" in links
        url = URL(links["next"]["url"]).path_qs if "next" in links else None
        if url is not None:
            assert "page_size=2" in url
    assert pages == 3
    assert seen == sorted(state.identities)


async def test_list_filters_by_credentials_identifier(admin: Client, state: StandinState) -> None:
    resp = await admin.get("/admin/identities", params={"credentials_identifier": ALICE[0]})
    body = await json_of(resp)
    assert [i["id"] for i in body] == [alice(state)]
    assert body[0]["credentials"]["password"]["identifiers"] == [ALICE[0]]
    assert "next" not in resp.links


async def test_get_identity_includes_metadata_admin(admin: Client, state: StandinState) -> None:
    resp = await admin.get(f"/admin/identities/{alice(state)}")
    body = await json_of(resp, "identity")
    assert "metadata_admin" in body
    assert body["metadata_public"] is None
    resp = await admin.get("/admin/identities/00000000-0000-4000-8000-000000000000")
    assert resp.status == 404
    await json_of(resp, "errorGeneric")


async def test_put_replaces_and_nulls_omitted_metadata(admin: Client, state: StandinState) -> None:
    identity_id = alice(state)
    state.identities[identity_id]["metadata_admin"] = {"note": "x"}
    resp = await admin.put(
        f"/admin/identities/{identity_id}",
        json={"schema_id": "default", "traits": {"email": ALICE[0]}, "state": "inactive"},
    )
    body = await json_of(resp, "identity")
    assert body["state"] == "inactive"
    assert body["metadata_admin"] is None
    resp = await admin.put(f"/admin/identities/{identity_id}", json={"traits": {}})
    assert resp.status == 400


async def test_patch_adds_replaces_and_removes(admin: Client, state: StandinState) -> None:
    identity_id = alice(state)
    url = f"/admin/identities/{identity_id}"
    resp = await admin.patch(
        url, json=[{"op": "add", "path": "/metadata_public", "value": {"a": 1}}]
    )
    assert (await json_of(resp, "identity"))["metadata_public"] == {"a": 1}
    resp = await admin.patch(
        url,
        json=[
            {"op": "add", "path": "/metadata_public/b", "value": 2},
            {"op": "replace", "path": "/metadata_public/a", "value": 3},
        ],
    )
    assert (await json_of(resp, "identity"))["metadata_public"] == {"a": 3, "b": 2}
    resp = await admin.patch(url, json=[{"op": "remove", "path": "/metadata_public/a"}])
    assert (await resp.json())["metadata_public"] == {"b": 2}
    resp = await admin.patch(url, json=[{"op": "replace", "path": "/state", "value": "inactive"}])
    assert (await resp.json())["state"] == "inactive"
    assert state.identities[identity_id]["state"] == "inactive"


async def test_patch_traits_email_changes_the_login_identifier(
    admin: Client, state: StandinState
) -> None:
    identity_id = alice(state)
    resp = await admin.patch(
        f"/admin/identities/{identity_id}",
        json=[{"op": "replace", "path": "/traits/email", "value": "Alice2@Example.com"}],
    )
    assert resp.status == 200
    assert state.find_by_identifier("alice2@example.com") == identity_id


@pytest.mark.parametrize(
    "patch",
    [
        [{"op": "test", "path": "/state", "value": "active"}],
        [{"op": "move", "from": "/traits", "path": "/metadata_public"}],
        [{"op": "copy", "from": "/traits", "path": "/metadata_public"}],
        [{"op": "replace", "path": "/id", "value": "x"}],
        [{"op": "replace", "path": "/stateChangedAt", "value": "x"}],
        [{"op": "replace", "path": "/state_changed_at", "value": "x"}],
        [{"op": "add", "path": "/credentials/password", "value": {}}],
        [{"op": "remove", "path": "/metadata_public/missing"}],
        [{"op": "add", "path": "/metadata_public/x", "value": 1}],  # metadata_public is null
        [{"op": "replace", "path": "/state", "value": "frozen"}],
        {"op": "add", "path": "/metadata_public", "value": {}},
    ],
    ids=[
        "test",
        "move",
        "copy",
        "id",
        "stateChangedAt",
        "state_changed_at",
        "credentials",
        "remove-missing",
        "add-under-null",
        "bad-state",
        "not-a-list",
    ],
)
async def test_patch_refusals_are_400_and_change_nothing(
    admin: Client, state: StandinState, patch: object
) -> None:
    identity_id = alice(state)
    before = dict(state.identities[identity_id])
    resp = await admin.patch(f"/admin/identities/{identity_id}", json=patch)
    assert resp.status == 400
    await json_of(resp, "errorGeneric")
    assert state.identities[identity_id] == before


async def test_patch_unknown_identity_is_404(admin: Client) -> None:
    resp = await admin.patch(
        "/admin/identities/00000000-0000-4000-8000-000000000000",
        json=[{"op": "add", "path": "/metadata_public", "value": {}}],
    )
    assert resp.status == 404


async def test_delete_identity_and_list_its_sessions(admin: Client, state: StandinState) -> None:
    identity_id = alice(state)
    state.create_session(identity_id)
    resp = await admin.get(f"/admin/identities/{identity_id}/sessions")
    [session] = await json_of(resp)
    validate("session", session)
    resp = await admin.delete(f"/admin/identities/{identity_id}")
    assert resp.status == 204
    assert identity_id not in state.identities
    resp = await admin.delete(f"/admin/identities/{identity_id}")
    assert resp.status == 404


async def test_admin_calls_are_recorded_as_admin(admin: Client, state: StandinState) -> None:
    state.reset_calls()
    await admin.get("/admin/identities", params={"page_size": "5"})
    assert state.count("GET", "/admin/identities") == 1
    assert state.requests[0].app == "admin"
    assert state.requests[0].path_qs == "/admin/identities?page_size=5"
