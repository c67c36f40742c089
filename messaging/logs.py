"""Structured (JSON) logs carrying the correlation id, with personal data masked."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nameko.extensions import DependencyProvider

# Green-thread local under eventlet's monkey patching, thread local in the gateway.
_context = threading.local()

# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def set_correlation_id(correlation_id: str | None) -> None:
    _context.correlation_id = correlation_id


def get_correlation_id() -> str | None:
    return getattr(_context, "correlation_id", None)


@contextmanager
def correlated(correlation_id: str | None) -> Iterator[None]:
    """Log lines inside carry ``correlation_id`` (a green thread of its own starts with none;
    one item of a batch has its own)."""
    before = get_correlation_id()
    set_correlation_id(correlation_id)
    try:
        yield
    finally:
        set_correlation_id(before)


def mask_email(email: str | None) -> str:
    """``ana.garcia@example.com`` → ``a***@example.com``: enough to trace, not to identify."""
    if not email or "@" not in email:
        return "***"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


# The password of every URI in a line (AMQP_URI may list several brokers: nameko and kombu
# mask only the first), whatever logged it.
_URI_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s;]+:)([^@\s;/]+)(@)", re.I)


def mask_uri_passwords(text: str) -> str:
    return _URI_PASSWORD.sub(r"\1********\3", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.service = service or os.environ.get("SERVICE_NAME", "clientela")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": mask_uri_passwords(record.getMessage()),
        }
        correlation_id = get_correlation_id()
        if correlation_id:
            entry["request_id"] = correlation_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_info:
            entry["exc"] = mask_uri_passwords(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(service: str, level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    logging.getLogger("kombu").setLevel(logging.WARNING)
    logging.getLogger("amqp").setLevel(logging.WARNING)


class LogContext(DependencyProvider):
    """Puts the worker's correlation id (the gateway's X-Request-ID) into every log line."""

    def worker_setup(self, worker_ctx: Any) -> None:
        set_correlation_id(worker_ctx.context_data.get("correlation_id") or worker_ctx.call_id)

    def worker_teardown(self, worker_ctx: Any) -> None:
        set_correlation_id(None)
