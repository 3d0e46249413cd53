"""Logging: structlog on top of the standard library, one line per event, on standard error.

``configure("json")`` writes JSON lines (production); ``configure("console")`` readable lines
(development). Lines from the standard library's loggers (Flask, gunicorn, Alembic) go through
the same formatter, so every line of a process has one shape. Whatever is bound with
``bind_contextvars`` (the request id, an outbox message's id) joins every line until it is
cleared. Before a line is written, customer email addresses are masked and secrets (tokens,
passwords, keys, signatures) are replaced, whatever key or sentence they hide in.

Modules log with ``log = structlog.get_logger(__name__)`` and ``log.info("event", key=value)``.
Nothing here imports Flask.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars
from structlog.typing import Processor

__all__ = ["bind_contextvars", "bound_contextvars", "clear_contextvars", "configure", "mask_email"]

FORMATS = ("json", "console")

EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Secrets that may sit inside a sentence (an exception's message, a URL): API tokens, Stripe keys
# and signing secrets, bearer credentials, signed link tokens in a query string.
SECRETS = re.compile(
    r"\b(?:rpt|sk|rk|pk|whsec)_[A-Za-z0-9_-]{6,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|(?<=[?&]token=)[^&\s]+|(?<=[?&]key=)[^&\s]+"
)
SECRET_KEYS = ("password", "passwd", "secret", "token", "authorization", "api_key", "cookie", "signature")
REDACTED = "[redacted]"


def mask_email(text: str) -> str:
    """``emily.clark@example.com`` → ``e***@example.com``: enough to tell customers apart in a log."""
    return EMAIL.sub(r"\1***@\2", text)


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return SECRETS.sub(REDACTED, mask_email(value))
    if isinstance(value, dict):
        return {k: REDACTED if _secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _secret_key(key: object) -> bool:
    key = str(key).lower()
    # idempotency keys and token ids are not secrets; the tokens themselves are.
    return any(word in key for word in SECRET_KEYS) and not key.endswith(("_id", "_prefix"))


def scrub(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """A structlog processor: mask emails and drop secrets in every value, the traceback included."""
    return {k: REDACTED if _secret_key(k) else _scrub(v) for k, v in event_dict.items()}


class _StandardError(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (pytest swaps it per test)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(fmt: str) -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "json":
        last: list[Processor] = [
            structlog.processors.format_exc_info,
            scrub,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        # The traceback is rendered into the event first so that it is scrubbed like the rest.
        last = [
            structlog.processors.format_exc_info,
            scrub,
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
    )


def configure(fmt: str = "console", level: str | int = "INFO") -> None:
    """Send every logger's lines to standard error in ``fmt``; safe to call again (tests do)."""
    structlog.configure(
        # Lines below the level are dropped first, before any of the work of building them.
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    # Replace only our own handler: others (pytest's capture, an operator's) stay.
    for handler in [h for h in root.handlers if isinstance(h, _StandardError)]:
        root.removeHandler(handler)
    handler = _StandardError()
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else str(level).upper())
    # Werkzeug's development server writes its own access line (ours is the request line), and
    # WeasyPrint narrates every step of every PDF at INFO.
    # flufl.bounce names each detector it runs, for every inbound message.
    for noisy in ("werkzeug", "weasyprint", "fontTools", "alembic.runtime.plugins", "flufl.bounce"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
