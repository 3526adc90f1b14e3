"""structlog configuration: one JSON line per event, context (job_id, message_id, attempt) bound per job.

Third-party chatter is kept out of the output and in the log at debug level: lines a library prints while
`third_party_output()` is active, and warnings raised from code outside f5-worker (pydub's "Couldn't find
ffmpeg" at import, for one). f5-worker's own warnings stay visible."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, TextIO

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


_OWN_CODE = (str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2] / "contracts"))
_show_warning = warnings.showwarning  # the interpreter's, for f5-worker's own warnings


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    if filename.startswith(_OWN_CODE):
        _show_warning(message, category, filename, lineno, file, line)
        return
    get_logger("warnings").debug(
        "third_party_warning", category=category.__name__, warning=str(message), source=f"{filename}:{lineno}"
    )


class _LinesToLog(io.TextIOBase):
    """A stdout stand-in: every line written becomes a debug log line naming its source. A logger that itself
    writes to stdout (structlog before `configure`) lands in the real stdout, not back here."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._pending = ""
        self._stdout = sys.stdout
        self._inside = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if getattr(self._inside, "active", False):
            return self._stdout.write(text)
        self._inside.active = True
        try:
            return self._collect(text)
        finally:
            self._inside.active = False

    def _collect(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                get_logger("third_party").debug("third_party_output", source=self._source, line=line.rstrip())
        return len(text)

    def flush(self) -> None:
        if getattr(self._inside, "active", False):
            self._stdout.flush()
            return
        pending, self._pending = self._pending, ""
        if pending.strip():
            self._inside.active = True
            try:
                get_logger("third_party").debug("third_party_output", source=self._source, line=pending.rstrip())
            finally:
                self._inside.active = False


@contextlib.contextmanager
def third_party_output(source: str) -> Iterator[None]:
    """Lines `source` prints while this is active go to the log at debug level, not to stdout."""
    sink = _LinesToLog(source)
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        sink.flush()


def configure(level: str = "INFO", json_lines: bool = True) -> None:
    warnings.showwarning = _log_warning
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
