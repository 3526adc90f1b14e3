"""How many messages the poll loop takes now, so that the device never waits for the network.

A job's life has three phases: *preparing* (claim, voice and text look-ups: round trips), *at the device* (in
the engine call, running or waiting its turn) and *finishing* (encoding, upload, record, publish, delete: round
trips again). Only the device is scarce. With `max_in_flight` a number, the loop keeps exactly that many jobs in
flight (fixed slots). With `auto` (the default) it keeps the device fed instead:

- *ahead* = jobs preparing or at the device. When a job leaves the device, the next one must be ready, so ahead
  must cover the time from receive to device: `low = 1 + ceil(1.5 * (receive + prepare) / device)`, from moving
  averages of the measured receive round trip, preparation time and device time per job (1.5: round trips
  vary).
- The loop receives only when ahead has fallen to `low`, and then up to `high = low + extra`, where `extra`
  jobs' worth of device work fits in `device_queue_s` (at most a receive's 10). So receives come in batches
  (fewer requests per job) and no message waits behind others for more than about `device_queue_s` plus the
  round trips: a worker with 60-second chapters holds the one it needs next, not ten of them.
- Finishing jobs hold no device and do not count as ahead; all jobs together stay under `AUTO_CAP`.

Before anything is measured, auto holds at most two messages. Device time per job is a single-server queue's
service time: a job's exit minus the later of its entry and the previous exit, so waiting is not counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from consumer.core.settings import AUTO_CAP

RECEIVE_MAX = 10  # SQS: at most 10 messages per receive
COVER_MARGIN = 1.5  # round trips vary (and share the CPU): cover one and a half times their average
_SMOOTHING = 0.2  # weight of the newest sample in the moving averages


@dataclass
class _JobPhase:
    started: float
    ahead: bool = True  # preparing, not yet at the device


class _Average:
    def __init__(self) -> None:
        self.value: float | None = None

    def add(self, sample: float) -> None:
        sample = max(0.0, sample)
        self.value = sample if self.value is None else self.value + _SMOOTHING * (sample - self.value)


class Admission:
    """Shared by the poll loop (`wanted`, `wait`) and the job threads (`preparing`, `at_device`)."""

    _current = threading.local()  # per job thread: its `_JobPhase` while `preparing` is open

    def __init__(
        self,
        max_in_flight: int | None,
        *,
        device_queue_s: float = 2.0,
        min_ahead: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_in_flight`: a fixed number of slots, or None for auto. `min_ahead`: auto keeps at least this
        many jobs ahead (the engine's batch size, so that batches can form)."""
        self.fixed = max_in_flight
        self.device_queue_s = device_queue_s
        self.min_ahead = max(1, min_ahead)
        self._clock = clock
        self._changed = threading.Condition()
        self._preparing = 0
        self._at_device = 0
        self._last_exit = 0.0
        self.receive_s = _Average()
        self.prepare_s = _Average()
        self.device_s = _Average()

    # --- the loop's side ------------------------------------------------------------------------------------
    @property
    def cap(self) -> int:
        return self.fixed if self.fixed is not None else AUTO_CAP

    def watermarks(self) -> tuple[int, int]:
        """(low, high): receive when ahead ≤ low, up to high. Fixed slots: (cap - 1, cap)."""
        if self.fixed is not None:
            return self.fixed - 1, self.fixed
        device, prepare = self.device_s.value, self.prepare_s.value
        if device is None or prepare is None:
            return self.min_ahead, max(2, self.min_ahead)  # nothing measured yet: stay small
        device = max(device, 1e-3)
        cover = COVER_MARGIN * ((self.receive_s.value or 0.0) + prepare) / device
        low = max(self.min_ahead, 1 + math.ceil(cover - 1e-6))  # (rounding noise must not add a job)
        extra = min(RECEIVE_MAX, int(self.device_queue_s / device + 1e-6))
        return low, low + extra

    def wanted(self, in_flight: int) -> int:
        """Messages to ask for now (0..10), given `in_flight` jobs (all phases)."""
        room = self.cap - in_flight
        if self.fixed is not None:
            return max(0, min(RECEIVE_MAX, room))
        low, high = self.watermarks()
        with self._changed:
            ahead = self._preparing + self._at_device
        if ahead > low:
            return 0
        return max(0, min(RECEIVE_MAX, room, high - ahead))

    def wait(self, timeout_s: float) -> None:
        """Until a job changes phase, or `timeout_s`."""
        with self._changed:
            self._changed.wait(timeout_s)

    def received(self, seconds: float, count: int) -> None:
        """A receive that returned `count` messages took `seconds` (empty long polls say nothing)."""
        if count:
            self.receive_s.add(seconds)

    # --- the jobs' side ---------------------------------------------------------------------------------------
    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Around a job's whole run: it counts as ahead until it first enters the device (if ever)."""
        phase = _JobPhase(self._clock())
        self._move(preparing=+1)
        self._current.phase = phase
        try:
            yield
        finally:
            self._current.phase = None
            if phase.ahead:  # never reached the device (failed, replayed, deferred...)
                self._move(preparing=-1)

    @contextmanager
    def at_device(self) -> Iterator[None]:
        """Around an engine call, inside `preparing` on the same thread. The later engine calls of one job (the
        blocks of a long-form text) count as device time only."""
        entered = self._clock()
        phase: _JobPhase | None = getattr(self._current, "phase", None)
        if phase is not None and phase.ahead:
            self.prepare_s.add(entered - phase.started)
            phase.ahead = False
            self._move(preparing=-1, at_device=+1)
        else:
            self._move(at_device=+1)
        try:
            yield
        finally:
            left = self._clock()
            with self._changed:
                self.device_s.add(left - max(entered, self._last_exit))
                self._last_exit = left
            self._move(at_device=-1)

    def _move(self, *, preparing: int = 0, at_device: int = 0) -> None:
        with self._changed:
            self._preparing += preparing
            self._at_device += at_device
            self._changed.notify_all()

    @property
    def ahead(self) -> int:
        with self._changed:
            return self._preparing + self._at_device
