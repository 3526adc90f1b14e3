"""How far a running job is, as its record shows it: chunk i of n, and an estimate of the time left.

The engine reports chunk boundaries (`SynthesisJob.on_progress`); the job's heartbeat thread writes the
latest snapshot to the record when it changed. The estimate comes from the chunks done so far once there are
some, before that from this worker's measured real-time factor applied to the audio the text should make.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from consumer.storage.job_record import ChunkProgress


class RealTimeFactor:
    """This worker's recent synthesis seconds per audio second (an exponential moving average)."""

    def __init__(self, weight: float = 0.3) -> None:
        self._weight = weight
        self._value: float | None = None
        self._lock = threading.Lock()

    def observe(self, synthesis_s: float, audio_s: float) -> None:
        if audio_s <= 0:
            return
        sample = synthesis_s / audio_s
        with self._lock:
            self._value = sample if self._value is None else (1 - self._weight) * self._value + self._weight * sample

    @property
    def value(self) -> float | None:
        return self._value


class Progress:
    """The latest chunk boundary of one job. `update` is called from the engine's thread, `take` from the
    heartbeat's: a snapshot is handed out once per change."""

    def __init__(self, rtf: RealTimeFactor, clock: Callable[[], float] = time.monotonic) -> None:
        self._rtf = rtf
        self._clock = clock
        self._lock = threading.Lock()
        self._chunk = 0
        self._chunks = 0
        self._expected_audio_s = 0.0
        self._started: float | None = None
        self._changed = False

    def start(self, expected_audio_s: float) -> None:
        with self._lock:
            self._expected_audio_s = expected_audio_s
            self._started = self._clock()

    def update(self, chunk: int, chunks: int) -> None:
        with self._lock:
            if self._started is None:
                self._started = self._clock()
            if (chunk, chunks) != (self._chunk, self._chunks):
                self._chunk, self._chunks, self._changed = chunk, chunks, True

    def snapshot(self) -> ChunkProgress | None:
        """What the record shows: None until the engine reported its plan."""
        with self._lock:
            if self._chunks == 0 or self._started is None:
                return None
            return ChunkProgress(chunk=self._chunk, chunks=self._chunks, eta_s=self._eta_s())

    def take(self) -> ChunkProgress | None:
        """The snapshot if it changed since the last `take`, else None."""
        with self._lock:
            changed, self._changed = self._changed, False
        return self.snapshot() if changed else None

    def _eta_s(self) -> float | None:
        assert self._started is not None
        elapsed = self._clock() - self._started
        if self._chunk >= self._chunks:
            return 0.0
        if self._chunk > 0:
            return round(elapsed / self._chunk * (self._chunks - self._chunk), 1)
        rtf = self._rtf.value
        if rtf is None or self._expected_audio_s <= 0:
            return None
        return round(max(0.0, rtf * self._expected_audio_s - elapsed), 1)
