"""The shipped proxy examples stay in step with the headers the decisions endpoint emits."""

from __future__ import annotations

import re
from pathlib import Path

from handlers.decisions.headers import IDENTITY_HEADERS
from handlers.decisions.request import REGISTRY_HEADERS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_traefik_copies_every_identity_header_and_strips_registry_context() -> None:
    text = (DEPLOY / "traefik" / "decisions.yml").read_text()
    listed = text.split("authResponseHeaders:", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"- (X-[\w-]+)", listed) == list(IDENTITY_HEADERS)
    for name in REGISTRY_HEADERS:
        assert f'{name}: ""' in text
    assert 'address: "http://kratos-hooks:8081/decisions"' in text


def test_caddy_copies_every_identity_header() -> None:
    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    copy = next(line for line in text.splitlines() if "copy_headers" in line)
    assert copy.split()[1:] == list(IDENTITY_HEADERS)


def test_nginx_passes_every_identity_header_and_sets_every_context_header() -> None:
    text = (DEPLOY / "nginx" / "decisions.conf").read_text()
    for name in IDENTITY_HEADERS:
        variable = "$upstream_http_" + name.lower().replace("-", "_")
        assert variable in text
        assert f"proxy_set_header {name} $" in text
    for name in (*REGISTRY_HEADERS, "X-Forwarded-Uri", "X-Forwarded-Method"):
        assert f"proxy_set_header {name} " in text
