"""Encoding audio too long to hold in memory (`text_uri` jobs): the engine's blocks go to a temporary file
as they come, then two passes turn it into the requested container, a block at a time.

    write(block)…  → raw float32 at the engine's rate                       (memory: one block)
    pass 1         → resampled (soxr's streaming resampler) to a second temporary file, loudness measured
                     on the way (`LoudnessMeter`: BS.1770 integrated loudness, the short path's number)
    pass 2         → gain for the loudness target, clip to [-1, 1], soundfile writes the container

The result is a file under the scratch directory, uploaded as one object. Short jobs keep `encode`, which works
in memory; the two agree on loudness and differ only in the resampler (soxr here, scipy's polyphase there).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from consumer.audio.encoding import _SOUNDFILE_ARGS, CONTENT_TYPES, MIN_LOUDNESS_S, decoded_duration_s, opus_rate
from consumer.audio.loudness import LoudnessMeter
from consumer.core.logs import get_logger
from contracts.requests import AudioFormat

log = get_logger(__name__)
BLOCK_S = 10.0  # seconds of audio per pass-2 block


@dataclass(frozen=True)
class EncodedFile:
    path: Path
    format: AudioFormat
    content_type: str
    sample_rate: int
    duration_s: float
    bytes: int


class LongformWriter:
    """Collects a job's audio on disk and encodes it there. Use as a context manager: the temporary files are
    removed on exit (the encoded file too, once uploaded)."""

    def __init__(
        self,
        scratch_dir: Path | None,
        sample_rate: int,
        fmt: AudioFormat,
        *,
        out_sample_rate: int | None = None,
        target_lufs: float | None = None,
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="f5-longform-", dir=scratch_dir)
        self._root = Path(self._dir.name)
        self._raw = self._root / "engine.f32"
        self._raw_file = self._raw.open("wb")
        self.sample_rate = sample_rate
        self.format = AudioFormat(fmt)
        rate = out_sample_rate or sample_rate
        self.out_rate = opus_rate(rate) if self.format is AudioFormat.OPUS else rate
        self.target_lufs = target_lufs
        self.samples = 0

    def __enter__(self) -> LongformWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._raw_file.closed:
            self._raw_file.close()
        self._dir.cleanup()

    def write(self, samples: np.ndarray) -> None:
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
        x.tofile(self._raw_file)
        self.samples += len(x)

    def finish(self) -> EncodedFile:
        self._raw_file.close()
        measured, meter = self._resample_and_measure()
        gain = self._gain(meter)
        out = self._root / f"audio.{self.format.value}"
        self._encode(measured, out, gain)
        if self.format is AudioFormat.PCM:
            rate, duration = self.out_rate, out.stat().st_size / 2 / self.out_rate
        elif self.format is AudioFormat.AAC:
            rate, duration = self.out_rate, decoded_duration_s(str(out), self.out_rate)
        else:  # what a player will decode (codecs may pad frames)
            info = sf.info(str(out))
            rate, duration = info.samplerate, info.frames / info.samplerate
        return EncodedFile(out, self.format, CONTENT_TYPES[self.format], rate, duration, out.stat().st_size)

    # --- passes ---------------------------------------------------------------------------------------------
    def _blocks(self, path: Path, rate: int) -> Iterator[np.ndarray]:
        block = int(BLOCK_S * rate)
        with path.open("rb") as f:
            while True:
                x = np.fromfile(f, dtype=np.float32, count=block)
                if not len(x):
                    return
                yield x

    def _resample_and_measure(self) -> tuple[Path, LoudnessMeter | None]:
        meter = LoudnessMeter(self.out_rate) if self.target_lufs is not None else None
        if self.out_rate == self.sample_rate:
            if meter is not None:
                for x in self._blocks(self._raw, self.sample_rate):
                    meter.add(x)
            return self._raw, meter
        import soxr

        stream = soxr.ResampleStream(self.sample_rate, self.out_rate, 1, dtype="float32", quality="HQ")
        resampled = self._root / "resampled.f32"
        with resampled.open("wb") as out:
            blocks = self._blocks(self._raw, self.sample_rate)
            block: np.ndarray | None = next(blocks, np.zeros(0, np.float32))
            while block is not None:  # one block ahead, to tell the resampler which one is last
                following = next(blocks, None)
                y = stream.resample_chunk(block, last=following is None)
                y.astype(np.float32, copy=False).tofile(out)
                if meter is not None:
                    meter.add(y)
                block = following
        return resampled, meter

    def _gain(self, meter: LoudnessMeter | None) -> float:
        if meter is None or self.target_lufs is None:
            return 1.0
        duration = meter.samples / self.out_rate
        if duration < MIN_LOUDNESS_S:
            log.info("loudness_skipped", reason="shorter than one 400 ms gating block", duration_s=round(duration, 3))
            return 1.0
        loudness = meter.integrated()
        if not math.isfinite(loudness):
            log.info("loudness_skipped", reason="silent (below the absolute gate)", duration_s=round(duration, 3))
            return 1.0
        return float(10.0 ** ((self.target_lufs - loudness) / 20.0))

    def _encode(self, source: Path, out: Path, gain: float) -> None:
        if self.format is AudioFormat.AAC:  # libsndfile has no AAC encoder
            from consumer.audio.stream_encoding import StreamEncoder

            encoder = StreamEncoder(self.format, self.out_rate)
            with out.open("wb") as f:
                for x in self._blocks(source, self.out_rate):
                    f.write(encoder.push(np.clip(x * np.float32(gain), -1.0, 1.0)))
                f.write(encoder.finish())
            return
        args = dict(_SOUNDFILE_ARGS[self.format])
        with sf.SoundFile(str(out), "w", samplerate=self.out_rate, channels=1, **args) as f:
            for x in self._blocks(source, self.out_rate):
                f.write(np.clip(x * np.float32(gain), -1.0, 1.0))
