"""Numpy signal processing shared by the engine and reference handling (torch-free): polyphase resampling, the
cross-fade that joins chunks, and the silence shortening of f5-tts, ported without pydub or temporary files."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling of a mono float signal (exact rational ratio)."""
    if from_rate == to_rate:
        return samples
    ratio = Fraction(to_rate, from_rate)
    out = resample_poly(samples, ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def cross_fade(waves: list[np.ndarray], sample_rate: int, duration_s: float = 0.15) -> np.ndarray:
    """Join chunks with linear cross-fades, exactly as f5-tts's `infer_batch_process` does."""
    if not waves:
        return np.zeros(0, dtype=np.float32)
    if duration_s <= 0:
        return np.concatenate(waves)
    final = waves[0]
    for nxt in waves[1:]:
        n = min(int(duration_s * sample_rate), len(final), len(nxt))
        if n <= 0:
            final = np.concatenate([final, nxt])
            continue
        overlap = final[-n:] * np.linspace(1, 0, n) + nxt[:n] * np.linspace(0, 1, n)
        final = np.concatenate([final[:-n], overlap, nxt[n:]])
    return final


class CrossFader:
    """`cross_fade`, one chunk at a time, holding back only the samples the next chunk may fade into:
    concatenating what `push` and `finish` return gives exactly `cross_fade(all chunks)`."""

    def __init__(self, sample_rate: int, duration_s: float = 0.15) -> None:
        self._fade = int(duration_s * sample_rate) if duration_s > 0 else 0
        self._held: np.ndarray | None = None

    def push(self, wave: np.ndarray) -> np.ndarray:
        """Add the next chunk; returns the samples that no later chunk can change."""
        if self._held is None:
            joined = wave
        else:
            n = min(self._fade, len(self._held), len(wave))
            if n <= 0:
                joined = np.concatenate([self._held, wave])
            else:
                overlap = self._held[-n:] * np.linspace(1, 0, n) + wave[:n] * np.linspace(0, 1, n)
                joined = np.concatenate([self._held[:-n], overlap, wave[n:]])
        keep = min(self._fade, len(joined))
        self._held = joined[len(joined) - keep :]
        return joined[: len(joined) - keep]

    def finish(self) -> np.ndarray:
        """The held-back end of the last chunk."""
        held, self._held = self._held, None
        return np.zeros(0, dtype=np.float32) if held is None else held


def remove_long_silences(
    samples: np.ndarray,
    sample_rate: int,
    *,
    min_silence_ms: int = 1000,
    threshold_db: float = -50.0,
    keep_ms: int = 500,
    seek_ms: int = 10,
) -> np.ndarray:
    """Shorten silences of `min_silence_ms` or more to `keep_ms` on each side (and trim the ends likewise).

    A numpy port of what f5-tts's `remove_silence_for_generated_wav` does with pydub's `split_on_silence`
    (same window, threshold, step and padding rules), without writing files. Audio that is silent
    throughout is returned unchanged.
    """
    ms = sample_rate / 1000.0
    length_ms = int(len(samples) / ms)
    if length_ms < min_silence_ms:
        return samples
    power = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])

    def rms(start_ms: int, end_ms: int) -> float:
        a, b = int(start_ms * ms), min(int(end_ms * ms), len(samples))
        return math.sqrt(max(power[b] - power[a], 0.0) / max(b - a, 1))

    threshold = 10 ** (threshold_db / 20)
    last = length_ms - min_silence_ms
    starts = list(range(0, last + 1, seek_ms)) + ([last] if last % seek_ms else [])
    quiet = [s for s in starts if rms(s, s + min_silence_ms) <= threshold]
    if not quiet:
        return samples
    # Silent windows → merged silent ranges (pydub's rule: a new range needs a gap of a whole window).
    silent: list[list[int]] = []
    range_start = prev = quiet[0]
    for s in quiet[1:]:
        if s != prev + seek_ms and s > prev + min_silence_ms:
            silent.append([range_start, prev + min_silence_ms])
            range_start = s
        prev = s
    silent.append([range_start, prev + min_silence_ms])
    # Complement → speech ranges, each padded by keep_ms; overlapping pads meet in the middle.
    speech, cursor = [], 0
    for a, b in silent:
        if a > cursor:
            speech.append([cursor, a])
        cursor = b
    if cursor < length_ms:
        speech.append([cursor, length_ms])
    if not speech:
        return samples
    padded = [[a - keep_ms, b + keep_ms] for a, b in speech]
    for left, right in itertools.pairwise(padded):
        if right[0] < left[1]:
            left[1] = right[0] = (left[1] + right[0]) // 2
    pieces = [samples[int(max(a, 0) * ms) : int(min(b, length_ms) * ms)] for a, b in padded]
    return np.concatenate(pieces).astype(samples.dtype, copy=False)
