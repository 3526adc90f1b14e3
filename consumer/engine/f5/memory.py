"""Out-of-memory backpressure: how many items one `CFM.sample` call may hold now, and freeing what a call
that ran out of memory left behind.

A call of several items that raises `torch.cuda.OutOfMemoryError` is retried in two halves (recursively, down
to single items; `consumer.engine.f5.runner`). The cap for later calls drops to the size of those halves, and
doubles back towards its limit after `cool_down` successful calls in a row (any out-of-memory restarts the
count): a GPU near its limit runs smaller batches for a while instead of failing jobs in a loop."""

from __future__ import annotations

import gc
import threading

import torch


class ItemCap:
    """Items per `CFM.sample` call: `limit`, cut to the halves' size when a call runs out of memory, doubled
    back (up to `limit`) after `cool_down` successful calls without one. Thread-safe."""

    def __init__(self, limit: int, cool_down: int) -> None:
        self.limit = limit
        self.value = limit
        self._cool_down = cool_down
        self._successes = 0
        self._lock = threading.Lock()

    def lowered(self, items: int) -> int:
        """A call of `items` ran out of memory: the new cap, the size of its halves (an item that does not fit
        alone leaves the cap as it is). Either way the cool-down starts again."""
        with self._lock:
            if items > 1:
                self.value = min(self.value, (items + 1) // 2)
            self._successes = 0
            return self.value

    def succeeded(self) -> int | None:
        """A call went through: the raised cap when this ends a cool-down, else None."""
        with self._lock:
            if self.value >= self.limit:
                return None
            self._successes += 1
            if self._successes < self._cool_down:
                return None
            self.value = min(self.limit, 2 * self.value)
            self._successes = 0
            return self.value


def free_after_oom(device: str) -> None:
    """What an out-of-memory left allocated goes back to the device before anything is retried."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
