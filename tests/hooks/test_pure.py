"""The hooks' policy, tested directly: auth verdicts, payload parsing, the envelope, the
metadata merge, breaker states, failure policies, backoff, spool replay."""

from __future__ import annotations

import base64

import orjson
import pytest

from config import ConfigError, load_settings
from config.hooks import HooksSettings
from handlers.hooks.delivery import retry_delay
from handlers.hooks.events import Welcome, envelope, message_id, parse_welcome
from handlers.hooks.identity_hook import parse_identity_call, policy_for
from handlers.hooks.lookup import is_nil, trait_value
from handlers.hooks.outbox import Entry
from handlers.hooks.resolvers import Resolved, ResolverChain
from handlers.hooks.spool import replay_lines
from proxy.kernel.breaker import CircuitBreaker
from proxy.kernel.errors import BadRequest
from proxy.kernel.hook_gate import Credentials, check
from proxy.kernel.kratos_admin import merged_metadata, metadata_patch, next_page
from proxy.kernel.pg import connect_options

ID = "7f1c3b9e-6a0d-4a53-9b55-0a0f6f3e1f11"
NIL = "00000000-0000-0000-0000-000000000000"
PG = {"HOOKS_PLATFORM_DATABASE_URL": "postgresql://platform@db/platform"}


def creds(**kw: object) -> Credentials:
    return Credentials.from_settings(HooksSettings(**kw))  # type: ignore[arg-type]


def basic(pair: str) -> str:
    return "Basic " + base64.b64encode(pair.encode()).decode()


def test_auth_verdicts() -> None:
    keys = creds(api_keys=("old", "new"), basic_auth=("kratos:pw",))
    assert check(keys, {"X-Kratos-Hooks-Key": "old"}) == "ok"
    assert check(keys, {"X-Kratos-Hooks-Key": "new"}) == "ok"
    assert check(keys, {"Authorization": basic("kratos:pw")}) == "ok"
    assert check(keys, {"X-Kratos-Hooks-Key": "ne"}) == "unauthorized"
    assert check(keys, {"Authorization": basic("kratos:pw2")}) == "unauthorized"
    assert check(keys, {"Authorization": "Basic !!!"}) == "unauthorized"
    assert check(keys, {}) == "unauthorized"
    assert check(creds(), {}) == "not_configured"
    assert check(creds(insecure_no_auth=True), {}) == "insecure"
    # Configured keys win over the insecure flag.
    assert check(creds(api_keys=("k",), insecure_no_auth=True), {}) == "unauthorized"


def test_welcome_from_jsonnet_output_and_from_ctx_identity() -> None:
    flat = {"identity_id": ID, "email": " a@b.c ", "display_name": "Ada L", "first_name": "Ada"}
    assert parse_welcome(flat) == Welcome(ID, "a@b.c", "Ada L", "Ada")
    identity = {"id": ID, "traits": {"email": "a@b.c", "name": {"first": "Ada", "last": "L"}}}
    assert parse_welcome(identity) == Welcome(ID, "a@b.c", "Ada L", "Ada")
    assert parse_welcome({"identity": identity}) == Welcome(ID, "a@b.c", "Ada L", "Ada")
    assert parse_welcome({**flat, "email": "  "}) == "email is missing or empty"
    assert parse_welcome({"id": ID, "traits": {"email": "a@b.c"}}) == (
        "display_name is missing or empty"
    )
    assert parse_welcome("x") == "body is not a JSON object"


def test_every_spelling_of_an_identity_id_is_one_identity() -> None:
    """Found by tests/fuzz: ``ABC…`` or ``{abc…}`` made a second outbox key, reservation and
    message id — a second welcome event for the same identity."""
    flat = {"email": "a@b.c", "display_name": "Ada L", "first_name": "Ada"}
    hexed = ID.replace("-", "")
    for spelling in (ID.upper(), "{" + ID + "}", f"urn:uuid:{ID}", hexed):
        assert parse_welcome({**flat, "identity_id": spelling}) == Welcome(
            ID, "a@b.c", "Ada L", "Ada"
        )


def test_envelope_shape_and_stable_message_id() -> None:
    document = envelope(
        Welcome(ID, "a@b.c", "Ada L", "Ada"), pattern="P", platform_url="https://x.io/"
    )
    user = document["data"]["user"]
    assert user == {
        "id": ID,
        "firstName": "Ada",
        "lastName": "",
        "email": "a@b.c",
        "profile": {"displayName": "Ada L", "url": f"https://x.io/user/{ID}"},
        "type": "user",
    }
    assert document == {
        "pattern": "P",
        "data": {
            "eventType": "P",
            "triggeredBy": user,
            "recipients": [user],
            "platform": {"url": "https://x.io"},
            "user": user,
        },
    }
    assert message_id("P", ID) == message_id("P", ID) != message_id("Q", ID)


WANTED = {"alkemio_actor_id": "u", "alkemio_agent_id": "a"}


@pytest.mark.parametrize(
    ("current", "patch"),
    [
        (None, [{"op": "add", "path": "/metadata_public", "value": WANTED}]),
        ("weird", [{"op": "add", "path": "/metadata_public", "value": WANTED}]),
        ({**WANTED, "other": 1}, []),
        (
            {"other": 1},
            [
                {"op": "add", "path": "/metadata_public/alkemio_actor_id", "value": "u"},
                {"op": "add", "path": "/metadata_public/alkemio_agent_id", "value": "a"},
            ],
        ),
        (
            {"alkemio_actor_id": "stale", "alkemio_agent_id": "a"},
            [{"op": "replace", "path": "/metadata_public/alkemio_actor_id", "value": "u"}],
        ),
    ],
)
def test_metadata_patch_is_minimal(current: object, patch: list[object]) -> None:
    assert metadata_patch(current, WANTED) == patch


def test_metadata_patch_escapes_pointer_tokens_and_merge_keeps_other_keys() -> None:
    assert metadata_patch({}, {"a/b~c": 1}) == [
        {"op": "add", "path": "/metadata_public/a~1b~0c", "value": 1}
    ]
    assert merged_metadata({"x": 1, "alkemio_actor_id": "old"}, WANTED) == {"x": 1, **WANTED}
    assert merged_metadata(None, WANTED) == WANTED


def test_next_page_link() -> None:
    header = (
        "<http://k/admin/identities?page_size=2&page_token=00000000-0000-0000-0000-000000000000>;"
        ' rel="first",<http://k/admin/identities?page_size=2&page_token=abc>; rel="next"'
    )
    assert next_page(header) == "http://k/admin/identities?page_size=2&page_token=abc"
    assert next_page('<http://k/x>; rel="first"') is None
    assert next_page(None) is None


def test_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("test", failure_threshold=2, cooldown=10, clock=lambda: now[0])
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    now[0] = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # and only one
    breaker.failure()  # the probe failed: a fresh cool-down
    assert breaker.state == "open"
    now[0] = 19.0
    assert not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.report()["status"] == "ok"


def test_failure_policy_per_point() -> None:
    overrides = ("registration=interrupt", "login = allow", "bogus")
    assert policy_for("registration", "allow", overrides) == "interrupt"
    assert policy_for("login", "interrupt", overrides) == "allow"
    assert policy_for("verification", "allow", overrides) == "allow"
    assert policy_for("verification", "interrupt", ()) == "interrupt"


def test_identity_call_shapes() -> None:
    assert parse_identity_call({"identity_id": ID.upper()}).identity_id == ID
    whole = {"id": ID, "traits": {}, "metadata_public": None}
    assert parse_identity_call(whole).identity == whole
    assert parse_identity_call({"identity": whole}).identity == whole
    with pytest.raises(BadRequest, match="identity_id"):
        parse_identity_call({"identity_id": ""})
    with pytest.raises(BadRequest, match=r"identity\.id must be a UUID"):
        parse_identity_call({"identity": {"id": "x"}})


def test_retry_delay_grows_and_is_capped() -> None:
    delays = [retry_delay(n, base=1, cap=60, jitter=0) for n in range(10)]
    assert delays[:4] == [1, 2, 4, 8]
    assert max(delays) == 60
    assert 1 <= retry_delay(0, base=1, cap=60) <= 1.2


def test_spool_replay_last_write_wins_and_skips_a_torn_line() -> None:
    first = Entry("k1", "event", {"n": 1}, created_at=1.0)
    done = Entry("k1", "event", {"n": 1}, created_at=1.0, delivered_at=5.0)
    other = Entry("k2", "identity", {"identity_id": ID}, created_at=2.0)
    lines = [
        orjson.dumps({"op": "set", "entry": first.as_json()}),
        orjson.dumps({"op": "set", "entry": other.as_json()}),
        orjson.dumps({"op": "set", "entry": done.as_json()}),
        orjson.dumps({"op": "del", "key": "k2"}),
        b'{"op":"set","entry":{"key":"k3","ki',  # killed mid-write
    ]
    assert replay_lines(lines) == {"k1": done}


def test_connect_options_keep_asyncpg_off_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert connect_options("postgresql://u:pw@h/db") == {"password": "pw", "ssl": False}
    assert connect_options("postgresql://u@h/db?sslmode=require") == {"password": ""}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HOOKS_OUTBOX_TABLE": "x; drop table y"}, "HOOKS_OUTBOX_TABLE"),
        ({"HOOKS_IDENTITY_FAILURE_POLICY_BY_POINT": "regstration=interrupt"}, "BY_POINT"),
        ({"HOOKS_RESOLVERS": "postgres,ldap"}, "HOOKS_RESOLVERS"),
        ({"HOOKS_PLATFORM_API_URL": "platform:3000"}, "HOOKS_PLATFORM_API_URL"),
        ({"HOOKS_IDENTITY_FAILURE_POLICY": "deny"}, "HOOKS_IDENTITY_FAILURE_POLICY"),
        ({"HOOKS_RESOLVE_TRAIT": "email"}, "needs HOOKS_PLATFORM_DATABASE_URL"),
        ({"HOOKS_RESOLVE_TRAIT": "email; --", **PG}, "HOOKS_RESOLVE_TRAIT="),
        ({"HOOKS_RESOLVE_TRAIT": "traits..email", **PG}, "HOOKS_RESOLVE_TRAIT="),
        ({"HOOKS_RESOLVE_TRAIT_QUERY": 'SELECT 1 FROM "user"'}, "HOOKS_RESOLVE_TRAIT_QUERY"),
        ({"HOOKS_RESOLVE_TRAIT_QUERY": "SELECT $1, $2"}, "HOOKS_RESOLVE_TRAIT_QUERY"),
        ({"HOOKS_RESOLVE_QUERY": "SELECT $10"}, "HOOKS_RESOLVE_QUERY"),
        # A lease that can run out while its holder still waits for a confirm lets a second
        # replica publish the same entry.
        ({"HOOKS_OUTBOX_LEASE": "30"}, "HOOKS_OUTBOX_LEASE=30: must exceed HOOKS_CONFIRM"),
        ({"HOOKS_CONFIRM_TIMEOUT": "90"}, "HOOKS_OUTBOX_LEASE=60: must exceed"),
        ({"HOOKS_CONFIRM_TIMEOUT": "0"}, "HOOKS_CONFIRM_TIMEOUT=0"),
    ],
)
def test_bad_hook_settings_fail_at_load_naming_the_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env=env)


@pytest.mark.parametrize(
    "spelling",
    [
        NIL,
        "{00000000-0000-0000-0000-000000000000}",
        "urn:uuid:00000000-0000-0000-0000-000000000000",
        "URN:UUID:00000000-0000-0000-0000-000000000000",
        "00000000000000000000000000000000",
        " 00000000-0000-0000-0000-000000000000\n",
    ],
)
def test_every_spelling_of_the_nil_uuid_is_an_identity_not_persisted(spelling: str) -> None:
    assert is_nil(spelling)
    assert parse_identity_call({"identity": {"id": spelling, "traits": {}}}).identity_id == NIL


def test_real_ids_and_non_uuids_are_not_the_nil_uuid() -> None:
    for value in (ID, ID.upper(), "00000000-0000-0000-0000-000000000001", "", "0", "nil", "0" * 31):
        assert not is_nil(value), value


def test_trait_value_reads_a_dotted_path_of_strings_only() -> None:
    identity = {"traits": {"email": " Ada@Example.org ", "name": {"first": "Ada"}, "n": 5}}
    assert trait_value(identity, "email") == "Ada@Example.org"  # the query decides on case
    assert trait_value(identity, "name.first") == "Ada"
    for path in ("name", "n", "missing", "email.x", "name.first.x", ""):
        assert trait_value(identity, path) is None, path
    assert trait_value({"traits": {"email": "   "}}, "email") is None
    assert trait_value({"traits": {"email": "a" * 513}}, "email") is None
    assert trait_value({"traits": None}, "email") is None
    assert trait_value(None, "email") is None


def test_trait_resolution_settings_defaults_and_a_valid_configuration() -> None:
    default = load_settings(env={}).hooks
    assert default.resolve_trait == ""  # off: an unverified trait is never trusted by default
    assert default.resolve_trait_query == (
        'SELECT "id", "agentId" FROM "user" WHERE "email" = $1 AND "authenticationID" IS NULL'
    )
    hooks = load_settings(env={"HOOKS_RESOLVE_TRAIT": "contact.email", **PG}).hooks
    assert hooks.resolve_trait == "contact.email"


def test_config_check_shows_the_trait_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.cli import main

    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOOKS_RESOLVE_TRAIT", "email")
        env.setenv("HOOKS_PLATFORM_DATABASE_URL", "postgresql://platform:pw-s3cret@db/platform")
        assert main(["config", "check"]) == 0
        out = capsys.readouterr().out
        env.delenv("HOOKS_PLATFORM_DATABASE_URL")
        assert main(["config", "check"]) == 2
    assert "HOOKS_RESOLVE_TRAIT " in out and "HOOKS_RESOLVE_TRAIT_QUERY" in out
    assert "s3cret" not in out
    assert "HOOKS_RESOLVE_TRAIT=email: needs HOOKS_PLATFORM_DATABASE_URL" in capsys.readouterr().err


class Recording:
    """A resolver that remembers what it was asked (the chain's logic only, no I/O)."""

    name = "recording"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, identity_id: str) -> Resolved | None:
        self.asked.append(identity_id)
        return Resolved("user-1", "agent-1")

    async def close(self) -> None:
        pass

    def report(self) -> dict[str, str]:
        return {"status": "ok"}


async def test_the_resolver_chain_never_asks_about_the_nil_id() -> None:
    resolver = Recording()
    chain = ResolverChain([resolver])
    for spelling in (NIL, "{" + NIL + "}", "urn:uuid:" + NIL, "0" * 32):
        assert await chain.resolve(spelling) is None
    assert resolver.asked == []
    assert await chain.resolve(ID) == Resolved("user-1", "agent-1")
    assert resolver.asked == [ID]
