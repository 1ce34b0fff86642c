"""The shipped proxy examples stay in step with the headers the decisions endpoint emits."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from handlers.decisions.identity_headers import ALL_HEADERS as IDENTITY_HEADERS
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


def test_nginx_forwards_the_raw_uri_that_was_judged() -> None:
    """``proxy_pass`` without a URI part sends the app the request's raw URI, the one the auth
    call carried as ``$request_uri``; a URI part or a rewrite would send nginx's own."""
    text = (DEPLOY / "nginx" / "decisions.conf").read_text()
    directives = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    assert "proxy_pass ${APP_UPSTREAM};" in directives
    assert "proxy_set_header X-Original-URI $request_uri;" in directives
    assert "proxy_set_header X-Forwarded-Uri $request_uri;" in directives
    assert not any(line.startswith(("rewrite ", "merge_slashes")) for line in directives)


def test_traefik_runs_kratos_hooks_last_in_every_chain() -> None:
    """Middlewares after ForwardAuth could rewrite the path the rules judged."""
    routers = yaml.safe_load((DEPLOY / "traefik" / "decisions.yml").read_text())["http"]["routers"]
    for router in routers.values():
        assert router["middlewares"][-1] == "kratos-hooks"


def test_caddy_changes_no_path_between_the_decision_and_the_app() -> None:
    text = (DEPLOY / "caddy" / "Caddyfile").read_text()
    lines = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    start = next(i for i, line in enumerate(lines) if line.startswith("forward_auth"))
    end = lines.index("}", start)  # forward_auth's own block (its `uri` is the auth call's)
    after = [line.split(" ")[0] for line in lines[end + 1 :]]
    assert "reverse_proxy" in after
    assert not {"rewrite", "uri", "handle_path", "strip_prefix"} & set(after)
