"""How Kratos decides between a JSON answer and a browser redirect, and what URL it saw."""

from __future__ import annotations

from aiohttp import web

_OFFERS = ("text/html", "application/json")


def _parse_accept(header: str) -> list[tuple[str, float]]:
    specs: list[tuple[str, float]] = []
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        value = fields[0].lower()
        if not value:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(raw.strip())
                except ValueError:
                    q = 0.0
        specs.append((value, q))
    return specs


def negotiate(accept: str, offers: tuple[str, ...] = _OFFERS, default: str = "text/html") -> str:
    """Mirror of golang/gddo's NegotiateContentType, which Kratos uses.

    An exact match beats ``type/*`` beats ``*/*`` at equal q; on a full tie the
    earlier offer (text/html) wins, so ``Accept: */*`` is a browser.
    """
    best, best_q, best_wild = default, -1.0, 3
    specs = _parse_accept(accept)
    for offer in offers:
        for value, q in specs:
            if q == 0.0 or q < best_q:
                continue
            if value == "*/*":
                if q > best_q or best_wild > 2:
                    best, best_q, best_wild = offer, q, 2
            elif value.endswith("/*"):
                if offer.startswith(value[:-1]) and (q > best_q or best_wild > 1):
                    best, best_q, best_wild = offer, q, 1
            elif value == offer and (q > best_q or best_wild > 0):
                best, best_q, best_wild = offer, q, 0
    return best


def accepts_json(request: web.BaseRequest) -> bool:
    return negotiate(request.headers.get("Accept", "")) == "application/json"


def is_json_request(request: web.BaseRequest) -> bool:
    # Kratos compares the raw header: "application/json; charset=utf-8" is not JSON mode.
    return request.headers.get("Content-Type") == "application/json" or accepts_json(request)


def request_url(request: web.BaseRequest) -> str:
    """The URL as Kratos reconstructs it (x.RequestURL): forwarded host and proto win."""
    host = request.headers.get("X-Forwarded-Host") or request.host
    scheme = request.headers.get("X-Forwarded-Proto") or request.scheme
    return f"{scheme}://{host}{request.rel_url}"


def client_ip(request: web.BaseRequest) -> str:
    for name in ("True-Client-IP", "X-Real-IP"):
        if value := request.headers.get(name, "").strip():
            return value
    if forwarded := request.headers.get("X-Forwarded-For", ""):
        return forwarded.split(",")[0].strip()
    return request.remote or ""
