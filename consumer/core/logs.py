"""structlog configuration: one JSON line per event, context (job_id, message_id, attempt) bound per job."""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

# Presigned URLs carry credentials in their query: never log the signature.
_SIGNED_QUERY = re.compile(r"(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s\"']+", re.IGNORECASE)
_SECRET_KEYS = {"webhook_secret", "aws_secret_access_key", "secret", "password", "authorization", "token"}


def redact(text: str) -> str:
    return _SIGNED_QUERY.sub(r"\1REDACTED", text)


def _scrub(_logger: object, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in _SECRET_KEYS:
            event[key] = "REDACTED"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


class _StderrLogger:
    """Writes each line to `sys.stderr` as it is when the line is written, not as it was at `configure` time (a CLI
    runner or a test may have swapped in a stream that is closed since)."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def configure(level: str = "INFO", json_lines: bool = True) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug", "s3transfer", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    renderer = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())  # no colour codes in files and pipes
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
