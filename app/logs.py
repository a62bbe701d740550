"""Logging: one line per event, JSON in production, with the request id, and never a secret.

- `configure_logging(config)` installs one handler on the root logger (idempotent), JSON or text as
  `LOG_FORMAT` says. gunicorn.conf.py reuses `JsonFormatter` for gunicorn's own logs, so everything a
  process writes is one format.
- `REQUEST_ID` is a context variable (per thread and per greenlet under gevent): the web layer sets it
  for each request (from `X-Request-ID` or generated), a background job sets its job id; every line
  logged meanwhile carries it.
- Every formatted line passes through `redact()`: bearer tokens, provider keys (OpenAI, Stripe, GitHub,
  Sorya API tokens), credential-looking query parameters and the configured secret values themselves
  are replaced by `[redacted]`, message, arguments and tracebacks alike. Redacting the final text, not
  the arguments, is what catches a secret inside an exception message or a repr.

This module imports only the standard library: gunicorn's master loads it before any worker patches
the standard library for gevent.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("sorya_request_id", default=None)

REDACTED = "[redacted]"
SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer)[^\s\"',;]+"),
    # OpenAI (sk-..., sk-proj-...), Stripe (sk_/rk_/pk_ live/test, whsec_), GitHub (ghp_, gho_, ghu_, ghs_,
    # ghr_, github_pat_), Sorya personal API tokens (sorya_...).
    re.compile(r"()\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"()\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{6,}"),
    re.compile(r"()\bwhsec_[A-Za-z0-9_]{6,}"),
    re.compile(r"()\bgh[opusr]_[A-Za-z0-9]{10,}"),
    re.compile(r"()\bgithub_pat_[A-Za-z0-9_]{10,}"),
    re.compile(r"()\bsorya_[A-Za-z0-9_\-]{10,}"),
    # Credentials in URLs: ?access_token=..., &code=... (an OAuth code is a credential until used).
    re.compile(
        r"(?i)([?&](?:access_token|refresh_token|token|client_secret|secret|password|api_key|code|key)=)"
        r"[^&\s\"']+"
    ),
]
_configured_secrets: list[str] = []
# Secrets shorter than this are not matched literally: "abc" would blank out ordinary words.
MIN_LITERAL_SECRET_CHARS = 8


def set_known_secrets(values: Iterable[str]) -> None:
    """Values that must never appear in a log line literally (SECRET_KEY, ENCRYPTION_KEY, API keys)."""
    known = {v for v in values if v and len(v) >= MIN_LITERAL_SECRET_CHARS}
    known.update(_configured_secrets)
    # Longest first, so a secret that contains another is replaced whole.
    _configured_secrets[:] = sorted(known, key=len, reverse=True)


def redact(text: str) -> str:
    for secret in _configured_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return text


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, extra fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            payload["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRS and name != "request_id" and not name.startswith("_"):
                payload[name] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc"] = record.exc_text
        return redact(json.dumps(payload, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """Readable lines for the sandbox and a developer's terminal; redacted all the same."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id:
            line = f"{line} [request_id={request_id}]"
        return redact(line)


_HANDLER_MARK = "_sorya_handler"


def configure_logging(log_format: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Install Sorya's handler on the root logger once per process (later calls update it)."""
    set_known_secrets(secrets)
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, _HANDLER_MARK, False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # Werkzeug's development server logs every request itself; ours are the request lines that count.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
