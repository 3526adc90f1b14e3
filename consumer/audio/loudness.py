"""Integrated loudness (ITU-R BS.1770-4) measured a block at a time, for audio too long to hold in memory.

The same K-weighting filters as `pyloudnorm.Meter` (whose coefficients it takes), run with their state carried
from block to block (exactly what filtering the whole signal at once computes); mean squares are kept per
100 ms step, a 400 ms gating block being four consecutive steps (75 % overlap); then the absolute (-70 LUFS)
and relative (-10 LU) gates. Memory: one float per 100 ms of audio. A test holds it to pyloudnorm's value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
STEPS_PER_BLOCK = 4  # 400 ms blocks, 100 ms apart


class LoudnessMeter:
    def __init__(self, sample_rate: int) -> None:
        import pyloudnorm  # lazy: only loudness targets pay the import

        meter = pyloudnorm.Meter(sample_rate)
        self._filters = [(np.asarray(f.b), np.asarray(f.a)) for f in meter._filters.values()]
        self._states = [np.zeros(max(len(a), len(b)) - 1) for b, a in self._filters]
        self._step = sample_rate // 10
        self._partial_sum = 0.0
        self._partial_len = 0
        self._steps: list[float] = []  # sum of squared filtered samples per 100 ms step
        self.samples = 0

    def add(self, samples: np.ndarray) -> None:
        x = np.asarray(samples, dtype=np.float64)
        self.samples += len(x)
        for i, (b, a) in enumerate(self._filters):
            x, self._states[i] = lfilter(b, a, x, zi=self._states[i])
        squared = np.square(x)
        offset = 0
        if self._partial_len:
            take = min(self._step - self._partial_len, len(squared))
            self._partial_sum += float(squared[:take].sum())
            self._partial_len += take
            offset = take
            if self._partial_len == self._step:
                self._steps.append(self._partial_sum)
                self._partial_sum, self._partial_len = 0.0, 0
        whole = (len(squared) - offset) // self._step
        if whole:
            block = squared[offset : offset + whole * self._step].reshape(whole, self._step)
            self._steps.extend(block.sum(axis=1).tolist())
            offset += whole * self._step
        if offset < len(squared):
            self._partial_sum += float(squared[offset:].sum())
            self._partial_len += len(squared) - offset

    def integrated(self) -> float:
        """Integrated loudness in LUFS; -inf when shorter than one gating block or gated out entirely."""
        steps = np.asarray(self._steps)
        if len(steps) < STEPS_PER_BLOCK:
            return -math.inf
        windows = np.lib.stride_tricks.sliding_window_view(steps, STEPS_PER_BLOCK).sum(axis=1)
        z = windows / (STEPS_PER_BLOCK * self._step)
        with np.errstate(divide="ignore"):
            loudness = -0.691 + 10.0 * np.log10(z)
        above_absolute = z[loudness >= ABSOLUTE_GATE_LUFS]
        if not len(above_absolute):
            return -math.inf
        relative_gate = -0.691 + 10.0 * math.log10(above_absolute.mean()) + RELATIVE_GATE_LU
        gated = z[(loudness >= ABSOLUTE_GATE_LUFS) & (loudness > relative_gate)]
        if not len(gated):
            return -math.inf
        return float(-0.691 + 10.0 * math.log10(gated.mean()))
