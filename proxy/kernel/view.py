"""Which public requests a feature intercepts: one table, looked up on the canonical route.

Kratos routes the *cleaned, decoded* path (KRATOS.md, "How Kratos reads a request"), so a
table keyed on the raw path would let ``//self-service/login`` or ``/self-service/%2e/login``
reach the password check unguarded. Every public request's view is computed once here — the
prefix-free raw target that is forwarded byte for byte, and the canonical path and route key
that features and metrics judge by — and handed on in ``request[VIEW]``. A target Kratos could
route in a way this view cannot tell (undecodable escapes, absolute or authority form, ``*``)
is refused with 400 before anything is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.kernel.canonical import canonical_path, canonical_uuid, query_get, route_key
from proxy.kernel.errors import BadRequest, NotFound
from proxy.kernel.routes import route_class


@dataclass(frozen=True, slots=True)
class RequestView:
    """One public request as the proxy forwards it and as Kratos will route it."""

    raw: str  # path + query after the configured prefix, exactly as the client sent them
    path: str  # the canonical path Kratos' router acts on
    route: str  # ``route_key(path)``: what hooked-route lookups compare
    query: str  # the raw query string, without ``?``
    label: str  # the bounded metrics label (``route_class``)

    def param(self, name: str) -> str:
        """A query parameter the way Kratos reads it (``r.URL.Query().Get``)."""
        return query_get(self.query, name) if self.query else ""

    def flow_id(self, name: str = "flow") -> str:
        """The flow id in ``name`` in its canonical form (Kratos accepts upper case, braces,
        ``urn:uuid:`` … as the same flow and answers with this form); "" when it is missing
        or is no UUID Kratos would parse."""
        return canonical_uuid(self.param(name)) or ""


def strip_prefix(raw_target: str, prefix: str) -> str | None:
    """``raw_target`` without ``prefix``; None when the target is outside the prefix."""
    if not prefix:
        return raw_target
    if raw_target == prefix:
        return "/"
    if raw_target.startswith(prefix) and raw_target[len(prefix)] in "/?":
        rest = raw_target[len(prefix) :]
        return rest if rest.startswith("/") else "/" + rest
    return None


def view_of(raw_target: str, prefix: str) -> RequestView:
    """The view of a request target; BadRequest for a target that is not an origin-form
    path Kratos would read as this proxy does, NotFound outside the configured prefix."""
    if not raw_target.startswith("/"):  # the middleware refuses these first; never forwarded
        raise BadRequest("The request target must be an absolute path")
    raw = strip_prefix(raw_target, prefix)
    if raw is None:
        raise NotFound()
    raw_path, _, query = raw.partition("?")
    path = canonical_path(raw_path)
    if path is None:
        raise BadRequest("The request path contains an invalid percent-encoding")
    return RequestView(raw, path, route_key(path), query, route_class(path))
