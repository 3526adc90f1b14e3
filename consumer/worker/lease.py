"""How long an attempt may still write, on its own monotonic clock.

An attempt owns its job while both its message is invisible to others and its claim on the record is live. Both
run out `visibility_timeout_s` after the request that set them started, so the attempt knows its deadline without
asking anyone: before every write it checks the deadline synchronously (`check`), so a worker that was paused
(GC, a frozen VM, a CUDA hang, SIGSTOP) gives up as soon as it runs again, instead of writing as a stale owner.
The heartbeat moves the deadline when an extension and a renewal both succeed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from consumer.core.errors import LeaseLost

MARGIN_S = 1.0  # a write must start at least this long before the deadline (it takes time to land)


class Lease:
    def __init__(self, visible_until: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._visible_until = visible_until
        self._claimed_until: float | None = None  # None: no claim yet (only the message is ours)

    @property
    def until(self) -> float:
        with self._lock:
            if self._claimed_until is None:
                return self._visible_until
            return min(self._visible_until, self._claimed_until)

    def remaining_s(self) -> float:
        return self.until - self._clock()

    def claimed(self, started: float, seconds: float) -> None:
        """A claim (or renewal) whose request started at `started` (monotonic) holds for `seconds`."""
        with self._lock:
            self._claimed_until = started + seconds

    def extended(self, started: float, seconds: float) -> None:
        """A visibility extension whose request started at `started` holds for `seconds`."""
        with self._lock:
            self._visible_until = started + seconds

    def check(self, what: str, margin_s: float = MARGIN_S) -> None:
        """Raise `LeaseLost` unless there is time left to write `what`."""
        remaining = self.remaining_s()
        if remaining < margin_s:
            raise LeaseLost(f"too late to write {what}: the lease ends in {remaining:.1f}s (needs {margin_s:.1f}s)")
