"""Structured logging: one JSON object per line (or a readable line for ``LOG_FORMAT=console``).

The request id lives in a context variable so every line written while a request is handled
carries it without threading it through calls. Nothing here ever receives a header map: call
sites log chosen fields, and anything secret-derived goes through ``fingerprint()``. Two nets
catch what call sites do not choose: the formatters mask credentials inside URLs (a driver's
error quoting ``redis://:password@host``), and ``server_logger()`` keeps aiohttp from logging
the raw bytes of a request it could not parse.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson
from aiohttp.http import HttpProcessingError

from config.redact import mask_url_credentials
from proxy.kernel.digests import sha256_hex

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_RESERVED = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def fingerprint(secret: str | bytes) -> str:
    """A short, stable, non-reversible tag for correlating a secret across log lines."""
    data = secret.encode() if isinstance(secret, str) else secret
    return sha256_hex(data)[:12]


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: _masked(v) for k, v in record.__dict__.items() if k not in _RESERVED}


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_url_credentials(value)
    if isinstance(value, list | tuple):
        return [_masked(item) for item in value]
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_url_credentials(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = mask_url_credentials(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        request_id = request_id_var.get()
        rid = f" [{request_id}]" if request_id else ""
        line = f"{record.levelname:<7} {record.name}{rid}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return mask_url_credentials(line)


class MalformedRequests(logging.Filter):
    """aiohttp logs a request it could not parse at ERROR, with a traceback whose message
    quotes the offending bytes — a ``Cookie``, an ``Authorization`` header, a ``?token=``.
    Anyone can send one, so it becomes one INFO line naming the kind of error only (the access
    log has the 400 too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        client = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "malformed request refused", ()
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.__dict__.update(error=type(exc).__name__, status=exc.code, client_ip=client)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def server_logger() -> logging.Logger:
    """The logger the listeners' connection handlers write to (``AppRunner(logger=…)``)."""
    logger = logging.getLogger("kratos_hooks.http.server")
    if not any(isinstance(f, MalformedRequests) for f in logger.filters):
        logger.addFilter(MalformedRequests())
    return logger


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access logger is replaced by ours; its other loggers stay at WARNING.
    logging.getLogger("aiohttp.access").propagate = False
    for noisy in ("aiohttp.server", "aiohttp.web", "aio_pika", "aiormq"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
