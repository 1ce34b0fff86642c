"""Property 1: every request Kratos' router serves on a hooked handler is one the canonical
path routes to that hook (or one the proxy refuses)."""

from __future__ import annotations

from collections.abc import Sequence

from proxy.kernel.canonical import canonical_path, request_path, route_key
from tests.parity.strategies import run_batches, targets
from tests.support.go_oracle import GoOracle, Route

# The hooked handlers: the guarded submissions, the flow fetches, the logout watch.
HOOKED = (
    {
        f"POST /self-service/{kind}": f"/self-service/{kind}"
        for kind in ("login", "registration", "recovery", "verification", "settings")
    }
    | {
        f"GET /self-service/{kind}/flows": f"/self-service/{kind}/flows"
        for kind in ("login", "registration", "recovery", "verification", "settings")
    }
    | {
        "GET /self-service/logout": "/self-service/logout",
        "GET /self-service/logout/browser": "/self-service/logout/browser",
        "DELETE /self-service/logout/api": "/self-service/logout/api",
    }
)
HOOKED_PATHS = {route_key(p) for p in HOOKED.values()}


def _python_key(target: str) -> str | None:
    split = request_path(target)
    if split is None:
        return None
    path = canonical_path(split[0])
    return None if path is None else route_key(path)


def check_routes(oracle: GoOracle, batch: Sequence[tuple[str, str]]) -> None:
    answers: list[Route] = oracle.many("route", [{"method": m, "target": t} for m, t in batch])
    problems = []
    for (method, target), route in zip(batch, answers, strict=True):
        split = request_path(target)
        if route.kind == "bad_request" or split is None:
            # Go refuses what Python refuses for origin-form targets (absolute forms: Python
            # may refuse an authority Go accepts — stricter, never looser on the path).
            if target.startswith("/") and (route.kind == "bad_request") != (split is None):
                if " " not in target:  # a request line with a space never reaches us
                    problems.append((method, target, route, split))
            continue
        if route.kind == "options_star":
            continue
        path = canonical_path(split[0])
        if path != route.path or split[1] != route.raw_query:
            # Where both accept, the canonical path is exactly Kratos' cleaned path.
            problems.append((method, target, route, split, path))
            continue
        if route.kind == "handler" and route.handler in HOOKED:
            key = route_key(HOOKED[route.handler])
            # For an origin-form target the raw path before "?" is all the proxy needs.
            raw = canonical_path(target.partition("?")[0]) if target.startswith("/") else path
            if route_key(path) != key or raw is None or route_key(raw) != key:
                problems.append((method, target, route, path))
        if route.kind == "redirect" and route.location is not None:
            fixed = canonical_path(route.location.partition("?")[0])
            if fixed is not None and route_key(fixed) in HOOKED_PATHS:
                # A variant Kratos redirects to a hooked route shares that route's key.
                if route_key(path) != route_key(fixed):
                    problems.append((method, target, route, path))
    assert not problems, problems[:10]


def test_hooked_handlers_are_guarded(go_oracle: GoOracle) -> None:
    run_batches(targets(), lambda batch: check_routes(go_oracle, batch))
