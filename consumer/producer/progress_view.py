"""A job's phases as its record shows them, for people waiting on it (`say`, `jobs wait`):
queued → started on worker W → chunk i/n (ETA) → encoding and uploading → done.

On a terminal the phase is one line rewritten in place (with the time waited); elsewhere (a log, a pipe) each
new phase is one plain line, and nothing else is written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from consumer.storage.job_record import InProgress, JobRecord, Released


def worker_of(owner: str) -> str:
    """The worker id of a claim owner (`{worker_id}/{attempt}`)."""
    return owner.rsplit("/", 1)[0] if "/" in owner else owner


def describe(record: JobRecord | None) -> tuple[tuple[Any, ...], str]:
    """(phase key, text) for a record that is not finished yet. The key changes only when the phase does."""
    if record is None:
        return ("queued",), "queued"
    if record.cancel is not None:
        return ("cancelling", record.status), "cancel requested"
    if isinstance(record, Released):
        released = record.released
        why = (released.error_code or released.reason if released else None) or "released"
        return ("requeued", why), f"queued again ({why})"
    if not isinstance(record, InProgress):
        return (record.status,), record.status.value.lower()
    worker = worker_of(record.worker_id)
    attempt = record.attempt
    tries = f", attempt {attempt}" if attempt > 1 else ""
    progress = record.progress
    if progress is None:
        return ("started", worker, attempt), f"started on {worker}{tries}"
    if progress.chunk >= progress.chunks:
        return ("uploading", worker), f"encoding and uploading on {worker}"
    eta = f", about {progress.eta_s:.0f} s left" if progress.eta_s is not None else ""
    return ("chunk", worker, progress.chunk), f"chunk {progress.chunk + 1}/{progress.chunks} on {worker}{eta}"


class PhaseReporter:
    """`on_record` callback for `Client.wait` that shows the phases."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._clock = clock
        self._started = clock()
        self._key: tuple[Any, ...] | None = None
        self.phases: list[str] = []  # each phase's text, in order (tests read it)

    def __call__(self, record: JobRecord | None) -> None:
        key, text = describe(record)
        if key != self._key:
            self._key = key
            self.phases.append(text)
            if not self._tty:
                self._stream.write(f"{text}\n")
                self._stream.flush()
        if self._tty:
            self._stream.write(f"\r\x1b[2K{text} ({self._clock() - self._started:.0f} s)")
            self._stream.flush()

    def close(self, text: str | None = None) -> None:
        """End the phase line (and print the last phase, e.g. "uploaded")."""
        if self._tty and self._key is not None:
            self._stream.write("\r\x1b[2K")
        if text:
            self.phases.append(text)
            self._stream.write(f"{text}\n")
        self._stream.flush()
