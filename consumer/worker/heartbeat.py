"""One heartbeat per in-flight message: keeps it invisible (and its claim alive) while the job runs.

Beats fall on a grid of `interval_s` shared by every heartbeat of the process (multiples of it on the monotonic
clock), so the extensions of all messages in flight go out together, in one ChangeMessageVisibilityBatch (see
`Queue.extend_visibility`). Each beat is awaited before the next is scheduled. The total visibility never passes
SQS's 12 h cap counted from receipt. A transient failure is retried soon, for as long as the current visibility
has not run out; a definitive one (the receipt is gone, the claim was taken over) or running out of time marks
the job lost, so nothing is written late: another worker may already own it.

Between beats an optional `tick` runs every `tick_s` on the same thread (the job writes its progress there, so
neither the engine nor the job thread ever waits on S3 for it).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from consumer.aws.retry import HEARTBEAT_EXTENSION
from consumer.core.settings import SQS_MAX_VISIBILITY_S

Extend = Callable[[int], None]  # extend(seconds): push the deadline `seconds` from now; raise on failure


def next_grid_point(now: float, interval_s: float) -> float:
    """The first multiple of `interval_s` after `now`: at most one interval away, the same for every heartbeat."""
    return (math.floor(now / interval_s) + 1) * interval_s


class Heartbeat:
    def __init__(
        self,
        extend: Extend,
        *,
        interval_s: float,
        visibility_s: int,
        received_at: float,
        clock: Callable[[], float] = time.monotonic,
        cap_s: int = SQS_MAX_VISIBILITY_S,
        on_lost: Callable[[BaseException | None], None] | None = None,
        is_definitive: Callable[[BaseException], bool] = lambda exc: True,
        retry_after_s: float = HEARTBEAT_EXTENSION.base_s,
        tick: Callable[[], None] | None = None,
        tick_s: float = 5.0,
    ) -> None:
        self._extend = extend
        self.interval_s = interval_s
        self.visibility_s = visibility_s
        self._received_at = received_at
        self._clock = clock
        self._cap_s = cap_s
        self._on_lost = on_lost
        self._is_definitive = is_definitive
        self.retry_after_s = min(retry_after_s, interval_s)
        self._tick = tick
        self.tick_s = tick_s
        self._deadline = received_at + visibility_s  # when the current visibility runs out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = threading.Event()
        self.lost_reason: str = ""
        self.extensions = 0
        self.failures = 0
        self._failing = False

    def beat(self) -> bool:
        """Extend once. Returns False (and marks the job lost) when the job can no longer be kept."""
        if self.lost.is_set():
            return False
        now = self._clock()
        remaining_cap = self._cap_s - (now - self._received_at)
        seconds = int(min(self.visibility_s, remaining_cap))
        if seconds < 1:
            self._mark_lost("visibility cap of 12 h reached", None)
            return False
        try:
            self._extend(seconds)
        except Exception as exc:  # noqa: BLE001 - classified below
            self.failures += 1
            out_of_time = self._clock() + self.retry_after_s >= self._deadline
            if self._is_definitive(exc) or out_of_time:
                self._mark_lost(f"extension failed: {exc}", exc)
                return False
            self._failing = True  # transient: try again soon, before the visibility runs out
            return True
        self._failing = False
        self._deadline = now + seconds
        self.extensions += 1
        return True

    def mark_lost(self, reason: str) -> None:
        """Someone else found the job lost (a progress write met another owner): stop beating."""
        if not self.lost.is_set():
            self._mark_lost(reason, None)
        self._stop.set()

    def _mark_lost(self, reason: str, exc: BaseException | None) -> None:
        self.lost_reason = reason
        self.lost.set()
        if self._on_lost is not None:
            self._on_lost(exc)

    def _run(self) -> None:
        while True:
            now = self._clock()
            beat_at = now + self.retry_after_s if self._failing else next_grid_point(now, self.interval_s)
            while (left := beat_at - self._clock()) > 0:
                if self._stop.wait(min(left, self.tick_s) if self._tick else left):
                    return
                if self._tick is not None and beat_at - self._clock() > 0 and not self.lost.is_set():
                    self._tick()
            if not self.beat():
                return

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and wait for a beat in progress, so no extension races the ack."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
