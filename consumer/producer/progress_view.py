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


def worker_of(owner: str) -> str:
    """The worker id of a claim owner (`{worker_id}/{attempt}`)."""
    return owner.rsplit("/", 1)[0] if "/" in owner else owner


def describe(record: dict[str, Any] | None) -> tuple[tuple[Any, ...], str]:
    """(phase key, text) for a record that is not finished yet. The key changes only when the phase does."""
    if record is None:
        return ("queued",), "queued"
    status = record.get("status")
    if record.get("cancel"):
        return ("cancelling", status), "cancel requested"
    if status == "RELEASED":
        released = record.get("released") or {}
        why = released.get("error_code") or released.get("reason") or "released"
        return ("requeued", why), f"queued again ({why})"
    if status != "INPROGRESS":
        return (status,), str(status).lower()
    worker = worker_of(str(record.get("worker_id", "?")))
    attempt = record.get("attempt", 1)
    tries = f", attempt {attempt}" if attempt and attempt > 1 else ""
    progress = record.get("progress")
    if not progress:
        return ("started", worker, attempt), f"started on {worker}{tries}"
    chunk, chunks = int(progress["chunk"]), int(progress["chunks"])
    if chunk >= chunks:
        return ("uploading", worker), f"encoding and uploading on {worker}"
    eta = progress.get("eta_s")
    eta_text = f", about {eta:.0f} s left" if isinstance(eta, int | float) else ""
    return ("chunk", worker, chunk), f"chunk {chunk + 1}/{chunks} on {worker}{eta_text}"


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

    def __call__(self, record: dict[str, Any] | None) -> None:
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
