"""Fixtures for the decisions tests: a rules file, the service started with it, sessions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Kratos, Service, ServiceFactory

RULES = """
[[rules]]
id = "health"
paths = ["/health"]
methods = ["GET"]
authenticators = ["anonymous"]
authorizer = "allow"

[[rules]]
id = "admin"
paths = ["/admin", "/admin/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = { type = "roles", roles = ["admin"] }

[[rules]]
id = "mfa"
paths = ["/secure/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = { type = "aal", aal = "aal2" }

[[rules]]
id = "blocked"
paths = ["/blocked/**"]
authenticators = ["anonymous"]
authorizer = "deny"

[[rules]]
id = "mixed"
paths = ["/mixed/**"]
authenticators = ["session_cookie", "anonymous"]
authorizer = "allow"

[[rules]]
id = "registry-push"
paths = ["/v2/**"]
registry_actions = ["put-manifest", "start-upload"]
registry_namespaces = ["team-a/**"]
authenticators = ["session_token"]
authorizer = "allow"

[[rules]]
id = "app"
hosts = ["app.example.com", "*.apps.example.com"]
paths = ["/app", "/app/**"]
authenticators = ["session_cookie", "session_token"]
authorizer = "allow"
headers = { "X-Tenant" = "{{ identity.metadata_public.tenant }}" }
"""

# What a trusted proxy (Traefik, Caddy) sends about the original request.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"Accept": "application/json"}


def forwarded(
    uri: str, *, method: str = "GET", host: str = "app.example.com", proto: str = "https"
) -> dict[str, str]:
    return {
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": proto,
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": uri,
    }


@dataclass
class Decisions:
    service: Service
    kratos: Kratos
    rules_file: Path

    @property
    def url(self) -> str:
        return self.service.internal_url + "/decisions"

    def user(
        self, *, roles: list[str] | None = None, aal: str = "aal1", tenant: str = "acme"
    ) -> tuple[dict[str, Any], str, str]:
        """(identity, session token, cookie value) of a fresh user with a session."""
        metadata = {"roles": roles or [], "tenant": tenant}
        identity = self.kratos.state.add_identity(
            f"user-{len(self.kratos.state.identities)}@example.com",
            "correct horse battery staple",
            metadata_public=metadata,
        )
        token, cookie = self.kratos.state.create_session(identity["id"], aal=aal)
        return identity, token, cookie

    def whoami_calls(self) -> int:
        return self.kratos.state.count("GET", "/sessions/whoami")


DecisionsFactory = Callable[..., Awaitable[Decisions]]


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return path


@pytest.fixture
async def start_decisions(
    kratos: Kratos, start_service: ServiceFactory, rules_file: Path
) -> DecisionsFactory:
    """``await start_decisions(**ENV)``: the service with the rules file, trusting loopback."""

    async def start(**env: str) -> Decisions:
        settings = {
            "KRATOS_PUBLIC_URL": kratos.public_url,
            "KRATOS_ADMIN_URL": kratos.admin_url,
            "TRUSTED_PROXIES": "127.0.0.1/32",
            "DECISIONS_RULES_FILE": str(rules_file),
            "DECISIONS_LOGIN_URL": "https://auth.example.com/self-service/login/browser",
            "DECISIONS_RELOAD_INTERVAL": "0.1",
            **env,
        }
        service = await start_service(**settings)
        kratos.state.public_base_url = service.public_url
        return Decisions(service, kratos, rules_file)

    return start


@pytest.fixture
async def decisions(start_decisions: DecisionsFactory) -> Decisions:
    """Without Redis: the in-process cache only."""
    return await start_decisions()


@pytest.fixture
async def decisions_redis(
    start_decisions: DecisionsFactory, redis_url: str, redis_prefix: str
) -> Decisions:
    return await start_decisions(REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix)


# The real proxies in front of an echo app (nginx, nginx with a URI in proxy_pass, Caddy).
from tests.decisions.proxies import echo_app, proxied, rules_text  # noqa: E402, F401
