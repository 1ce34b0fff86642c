"""Second-factor submissions, when configured, are keyed by the session they step up."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from config import ConfigError, load_settings
from tests.conftest import Kratos
from tests.guard.client import PASSWORD, browser_flow, lockout_messages, submit
from tests.guard.conftest import Guarded


def _cookies(set_cookies: list[str], jar: dict[str, str]) -> str:
    for header in set_cookies:
        name, _, value = header.partition(";")[0].partition("=")
        jar[name] = value
    return "; ".join(f"{k}={v}" for k, v in jar.items())


async def test_wrong_totp_codes_are_backed_off_per_session(
    guarded: Guarded,
    kratos: Kratos,
    http: aiohttp.ClientSession,
) -> None:
    kratos.state.add_identity("gina@example.com", PASSWORD, totp=True)
    svc = await guarded(
        BACKOFF_METHODS="password,totp",
        BACKOFF_PAIR_FREE="2",
    )
    flow = await browser_flow(http, svc.public_url)
    jar: dict[str, str] = {}
    _cookies([flow.cookie or ""], jar)
    step = await submit(http, svc.public_url, flow, "gina@example.com", PASSWORD)
    assert step.status == 422  # the password step passed: a success, not a failure
    cookie = _cookies(step.headers.getall("Set-Cookie"), jar)

    headers = {"Accept": "application/json", "Cookie": cookie}
    url = f"{svc.public_url}/self-service/login/browser?aal=aal2"
    async with http.get(url, headers=headers) as response:
        assert response.status == 200
        aal2 = await response.json()
    csrf = next(
        n["attributes"]["value"]
        for n in aal2["ui"]["nodes"]
        if n["attributes"]["name"] == "csrf_token"
    )
    post = f"{svc.public_url}/self-service/login?flow={aal2['id']}"
    body = orjson.dumps({"method": "totp", "totp_code": "000000", "csrf_token": csrf})
    answers = []
    for _ in range(3):
        json_headers = {**headers, "Content-Type": "application/json"}
        async with http.post(post, data=body, headers=json_headers) as response:
            answers.append((response.status, await response.json()))
    assert [status for status, _ in answers] == [400, 400, 400]
    assert not lockout_messages(answers[1][1])
    assert lockout_messages(answers[2][1])
    assert kratos.state.count("POST", "/self-service/login") == 3  # password + two codes


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"BACKOFF_PAIR_MAX": "1", "BACKOFF_PAIR_BASE": "2"}, "BACKOFF_PAIR_MAX"),
        ({"BACKOFF_IP_WINDOW": "10"}, "BACKOFF_IP_WINDOW"),
        ({"BACKOFF_IDENTIFIER_FREE": "-1"}, "BACKOFF_IDENTIFIER_FREE"),
        ({"BACKOFF_BROWSER_MODE": "legacy"}, "BACKOFF_LEGACY_REDIRECT_URL"),
        ({"BACKOFF_FAILURE_MESSAGE_IDS": "4000006,abc"}, "BACKOFF_FAILURE_MESSAGE_IDS"),
        ({"BACKOFF_BROWSER_MODE": "popup"}, "BACKOFF_BROWSER_MODE"),
    ],
)
def test_invalid_settings_stop_start_up_with_one_line(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        load_settings(env=env)
