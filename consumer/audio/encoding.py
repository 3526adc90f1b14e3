"""Audio encoding and the engine's numpy post-processing (torch-free).

`encode` turns mono float samples into the requested container: resample (scipy `resample_poly`), optional
loudness normalisation (pyloudnorm, ITU-R BS.1770), clip to [-1, 1], then write with soundfile. Loudness
normalisation needs at least one 400 ms gating block: shorter (or silent) audio is left at its level and a
note is logged, rather than guessing a gain from a peak.
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from consumer.core.logs import get_logger
from consumer.storage.audio import CONTENT_TYPES
from contracts.requests import AudioFormat

log = get_logger(__name__)

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the only rates Opus encodes
MIN_LOUDNESS_S = 0.4  # one BS.1770 gating block
_SOUNDFILE_ARGS: dict[AudioFormat, dict[str, str]] = {
    AudioFormat.WAV: {"format": "WAV", "subtype": "PCM_16"},
    AudioFormat.FLAC: {"format": "FLAC", "subtype": "PCM_16"},
    AudioFormat.MP3: {"format": "MP3", "subtype": "MPEG_LAYER_III"},
    AudioFormat.OPUS: {"format": "OGG", "subtype": "OPUS"},
    # Same float→int16 conversion as the WAV writer, without a header.
    AudioFormat.PCM: {"format": "RAW", "subtype": "PCM_16", "endian": "LITTLE"},
}


@dataclass(frozen=True)
class EncodedAudio:
    data: bytes
    format: AudioFormat
    content_type: str
    sample_rate: int
    duration_s: float


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling of a mono float signal (exact rational ratio)."""
    if from_rate == to_rate:
        return samples
    ratio = Fraction(to_rate, from_rate)
    out = resample_poly(samples, ratio.numerator, ratio.denominator)
    return out.astype(np.float32, copy=False)


def opus_rate(requested: int) -> int:
    """The nearest Opus rate at or above the requested one (48 kHz at most)."""
    return next((r for r in OPUS_RATES if r >= requested), OPUS_RATES[-1])


def normalise_loudness(samples: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Gain to an integrated loudness of `target_lufs`; unchanged if too short or silent to measure."""
    duration = len(samples) / sample_rate
    if duration < MIN_LOUDNESS_S:
        log.info("loudness_skipped", reason="shorter than one 400 ms gating block", duration_s=round(duration, 3))
        return samples
    import pyloudnorm  # lazy: only requests that ask for a loudness target pay the import

    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(samples.astype(np.float64))
    if not math.isfinite(loudness):
        log.info("loudness_skipped", reason="silent (below the absolute gate)", duration_s=round(duration, 3))
        return samples
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    return (samples * gain).astype(np.float32)


def encode(
    samples: np.ndarray,
    sample_rate: int,
    fmt: AudioFormat,
    *,
    out_sample_rate: int | None = None,
    target_lufs: float | None = None,
) -> EncodedAudio:
    """Encode mono float audio. The result's `sample_rate` and `duration_s` are those of the bytes."""
    fmt = AudioFormat(fmt)
    x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    rate = out_sample_rate or sample_rate
    if fmt is AudioFormat.OPUS:
        rate = opus_rate(rate)
    x = resample(x, sample_rate, rate)
    if target_lufs is not None:
        x = normalise_loudness(x, rate, target_lufs)
    x = np.clip(x, -1.0, 1.0)

    buffer = io.BytesIO()
    sf.write(buffer, x, rate, **_SOUNDFILE_ARGS[fmt])
    data = buffer.getvalue()
    if fmt is AudioFormat.PCM:
        duration = len(data) / 2 / rate
    else:  # what a player will decode (codecs may pad frames)
        info = sf.info(io.BytesIO(data))
        rate, duration = info.samplerate, info.frames / info.samplerate
    return EncodedAudio(data=data, format=fmt, content_type=CONTENT_TYPES[fmt], sample_rate=rate, duration_s=duration)


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
