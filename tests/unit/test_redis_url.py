"""``REDIS_URL`` forms: one server, Sentinel, Cluster — parsed at load, never echoed."""

from __future__ import annotations

import pytest

from config import ConfigError, describe, load_settings
from config.redis_url import key_prefix_problem, parse_redis_url


def test_server_urls_go_to_redis_py_unchanged() -> None:
    for url in ("redis://:pw@cache:6379/2", "rediss://cache", "unix:///run/redis.sock?db=1"):
        target = parse_redis_url(url)
        assert target.kind == "server" and target.url == url


def test_sentinel_url() -> None:
    target = parse_redis_url(
        "redis+sentinel://app:s%40cret@s1:26380,s2,[fd00::3]:26381/mymaster/2"
        "?sentinel_password=sp&sentinel_username=watch"
    )
    assert target.kind == "sentinel" and not target.tls
    assert target.nodes == (("s1", 26380), ("s2", 26379), ("fd00::3", 26381))
    assert (target.service, target.db) == ("mymaster", 2)
    assert (target.username, target.password) == ("app", "s@cret")
    assert (target.sentinel_username, target.sentinel_password) == ("watch", "sp")
    plain = parse_redis_url("rediss+sentinel://s1/mymaster")
    assert plain.tls and plain.db == 0 and plain.password is None
    assert plain.sentinel_password is None  # a sentinel without a password refuses AUTH


def test_cluster_url() -> None:
    target = parse_redis_url("rediss+cluster://:pw@n1:7000,n2:7001,n3")
    assert target.kind == "cluster" and target.tls
    assert target.nodes == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert (target.username, target.password) == (None, "pw")
    assert parse_redis_url("redis+cluster://n1/0").db == 0


def test_a_lone_userinfo_word_is_the_password_as_redis_py_reads_it() -> None:
    assert parse_redis_url("redis+cluster://secret@n1").password == "secret"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://cache:6379", "redis://, rediss://, unix://"),
        ("cache:6379", "redis://"),
        ("redis+sentinel://s1:26379", "service name"),
        ("redis+sentinel://s1/master/x", "/<service name>[/<db number>]"),
        ("redis+sentinel:///master", "at least one host"),
        ("redis+sentinel://s1,,s2/master", "a host name"),
        ("redis+sentinel://s1:0/master", "ports between 1 and 65535"),
        ("redis+sentinel://s1:99999/master", "ports between 1 and 65535"),
        ("redis+sentinel://fd00::1/master", "IPv6 hosts in [brackets]"),
        ("redis+sentinel://s1/master?ssl_cert_reqs=none", "no option 'ssl_cert_reqs'"),
        ("redis+cluster://n1:7000/3", "only db 0"),
        ("redis+cluster://n1?sentinel_password=x", "no option 'sentinel_password'"),
    ],
)
def test_refusals_say_what_was_expected(url: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_redis_url(url)
    assert expected in str(info.value)


def test_a_bad_url_stops_loading_without_showing_it() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"REDIS_URL": "redis+cluster://:hunter2@n1:7000/5"})
    message = str(info.value)
    assert message.startswith("REDIS_URL=***: expected ") and "db 0" in message
    assert "hunter2" not in message and "n1" not in message


def test_config_check_masks_every_form() -> None:
    for url in ("redis+sentinel://:hunter2@s1/m", "redis+cluster://:hunter2@n1"):
        rows = {env: shown for env, _, shown in describe(load_settings(env={"REDIS_URL": url}))}
        assert rows["REDIS_URL"] == "***"


@pytest.mark.parametrize("prefix", ["kh:", "", "{kh}:", "a{b", "}x:", "kh:{"])
def test_prefixes_that_keep_the_guard_on_one_slot_are_accepted(prefix: str) -> None:
    assert key_prefix_problem(prefix) is None
    assert load_settings(env={"REDIS_KEY_PREFIX": prefix}).store.redis_key_prefix == prefix


def test_a_prefix_opening_an_empty_hash_tag_is_refused() -> None:
    # "{}" is no hash tag: every key would be hashed whole, and a script's keys split.
    with pytest.raises(ConfigError, match=r"REDIS_KEY_PREFIX='a\{\}:': expected no empty"):
        load_settings(env={"REDIS_KEY_PREFIX": "a{}:"})
