"""Audio encoding (torch-free): content types and file extensions per format, loudness, containers.

`encode` turns mono float samples into the requested container: resample (scipy `resample_poly`), optional
loudness normalisation (pyloudnorm, ITU-R BS.1770), clip to [-1, 1], then write with soundfile (AAC, which
libsndfile cannot write: PyAV's encoder, through `consumer.audio.stream_encoding`). Loudness
normalisation needs at least one 400 ms gating block: shorter (or silent) audio is left at its level and a
note is logged, rather than guessing a gain from a peak.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from consumer.audio.signal import resample
from consumer.core.logs import get_logger
from contracts.requests import AudioFormat

log = get_logger(__name__)

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the only rates Opus encodes
MIN_LOUDNESS_S = 0.4  # one BS.1770 gating block
CONTENT_TYPES = {
    AudioFormat.WAV: "audio/wav",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OPUS: "audio/ogg; codecs=opus",
    AudioFormat.PCM: "audio/L16",
    AudioFormat.AAC: "audio/aac",
}
EXTENSIONS = {
    AudioFormat.WAV: "wav",
    AudioFormat.FLAC: "flac",
    AudioFormat.MP3: "mp3",
    AudioFormat.OPUS: "opus",
    AudioFormat.PCM: "pcm",
    AudioFormat.AAC: "aac",
}
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
    if fmt is AudioFormat.AAC:
        from consumer.audio.stream_encoding import StreamEncoder

        encoder = StreamEncoder(fmt, rate)
        data = encoder.push(x) + encoder.finish()
        return EncodedAudio(data, fmt, CONTENT_TYPES[fmt], rate, decoded_duration_s(io.BytesIO(data), rate))

    buffer = io.BytesIO()
    sf.write(buffer, x, rate, **_SOUNDFILE_ARGS[fmt])
    data = buffer.getvalue()
    if fmt is AudioFormat.PCM:
        duration = len(data) / 2 / rate
    else:  # what a player will decode (codecs may pad frames)
        info = sf.info(io.BytesIO(data))
        rate, duration = info.samplerate, info.frames / info.samplerate
    return EncodedAudio(data=data, format=fmt, content_type=CONTENT_TYPES[fmt], sample_rate=rate, duration_s=duration)


def decoded_duration_s(source: io.BytesIO | str, rate: int) -> float:
    """What a decoder gives for a file soundfile cannot read (AAC: its priming and last frame's padding count)."""
    import av

    with av.open(source, "r") as container:
        return sum(int(frame.samples) for frame in container.decode(audio=0)) / rate
