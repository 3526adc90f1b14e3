"""Why a job's synthesis stops before it is done, and the shutdown signal that stops it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum

from consumer.worker.held_claim import HeldClaim


class AbortCause(StrEnum):
    """Why synthesis was stopped: latched when the abort check first says yes."""

    CANCELLED = "cancelled"
    LOST = "lost"  # the heartbeat lost the job (takeover, receipt gone)
    LEASE = "lease"  # the lease ran out (a pause, extensions failing)
    SHUTDOWN = "shutdown"
    DEADLINE = "deadline"  # job_timeout_s


class Abort(threading.Event):
    """Set when in-flight jobs must stop and hand their messages back (shutdown). `hidden_s`: how long a
    returned message stays hidden: until this worker's own open long poll has ended, so that poll cannot
    receive the message it was just given back (that would cost the job a receive)."""

    hidden_s: int = 0


class AbortCheck:
    """Asked by the engine between sampling steps: must synthesis stop? The first cause it finds is latched
    (`cause`): the exit acts on what stopped the work, never on a cause re-derived later."""

    def __init__(self, held: HeldClaim, shutdown: threading.Event, deadline: Callable[[], float]) -> None:
        self._held = held
        self._shutdown = shutdown
        self._deadline = deadline
        self.cause: AbortCause | None = None

    def __call__(self) -> bool:
        if self.cause is None:
            self.cause = self.reason()
        return self.cause is not None

    def reason(self) -> AbortCause | None:
        """The cause to stop now, if any (in order: cancel, lost job, lapsed lease, shutdown, deadline)."""
        lost = self._held.heartbeat.lost.is_set()
        if self._held.cancelled.is_set() and not lost:
            return AbortCause.CANCELLED
        if lost:
            return AbortCause.LOST
        if self._held.lease.remaining_s() <= 0:
            return AbortCause.LEASE
        if self._shutdown.is_set():
            return AbortCause.SHUTDOWN
        if time.monotonic() > self._deadline():
            return AbortCause.DEADLINE
        return None
