"""Encoding a job's audio block by block, for readers that play it while the job runs (torch-free).

`StreamEncoder.push` takes the engine's next block and returns the bytes ready now; `finish` flushes. The bytes,
concatenated, are a complete file of the format:

    pcm   raw 16-bit little-endian mono
    wav   a 44-byte header whose sizes say "unknown" (0xFFFFFFFF, as OpenAI streams WAV), then the samples;
          `wav_header(n, rate)` is the same header with the sizes, for the final object
    mp3   MPEG-1/2 layer III frames (libmp3lame, no Xing header: nothing to rewrite at the end)
    opus  Ogg pages of Opus packets, a page every 100 ms of audio (libopus)
    aac   AAC-LC in ADTS frames

Resampling (soxr's streaming resampler, as the long-form path) happens before the encoder; samples are clipped
to [-1, 1]. Memory is bounded by a block: nothing keeps the whole audio. FLAC is not streamed (its header holds
the total length).
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from consumer.audio.encoding import CONTENT_TYPES, opus_rate
from contracts.requests import AudioFormat

WAV_HEADER_BYTES = 44
UNKNOWN_SIZE = 0xFFFFFFFF
_CONTAINERS = {  # format → (PyAV container, codec, container options)
    AudioFormat.MP3: ("mp3", "libmp3lame", {"write_xing": "0"}),
    AudioFormat.OPUS: ("ogg", "libopus", {"page_duration": "100000"}),
    AudioFormat.AAC: ("adts", "aac", {}),
}


def wav_header(data_bytes: int | None, sample_rate: int) -> bytes:
    """A 44-byte PCM16 mono RIFF header; `data_bytes` None: the streaming form, sizes unknown."""
    riff = UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    data = UNKNOWN_SIZE if data_bytes is None else data_bytes
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        sample_rate,
        2 * sample_rate,
        2,
        16,
        b"data",
        data,
    )


def to_pcm16(x: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit little-endian integers, as libsndfile writes them (to 32 bits,
    rounded, then the top 16): a streamed WAV or PCM is the same bytes as `encode`'s."""
    wide = np.clip(np.rint(x.astype(np.float64) * 2.0**31), -(2.0**31), 2.0**31 - 1).astype(np.int64)
    return (wide >> 16).astype("<i2").tobytes()


class _Sink(io.RawIOBase):
    """Where PyAV writes: drained after every push (never seeked)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        self.buffer += data
        return len(data)

    def drain(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


class StreamEncoder:
    """Encodes one job's audio block by block: the bytes returned by push()… and finish(), concatenated, are a
    complete file of the format."""

    def __init__(self, fmt: AudioFormat, sample_rate: int, *, out_sample_rate: int | None = None) -> None:
        self.format = AudioFormat(fmt)
        if self.format is AudioFormat.FLAC:
            raise ValueError("flac is not streamed (its header holds the total length)")
        self.content_type = CONTENT_TYPES[self.format]
        rate = out_sample_rate or sample_rate
        self.sample_rate = opus_rate(rate) if self.format is AudioFormat.OPUS else rate
        self._in_rate = sample_rate
        self._resampler: Any = None
        if self.sample_rate != sample_rate:
            import soxr

            self._resampler = soxr.ResampleStream(sample_rate, self.sample_rate, 1, dtype="float32", quality="HQ")
        self._samples = 0  # encoded so far, at the output rate
        self._started = False
        self._container: Any = None
        self._stream: Any = None
        self._sink = _Sink()
        if self.format in _CONTAINERS:
            import av

            kind, codec, options = _CONTAINERS[self.format]
            self._container = av.open(self._sink, "w", format=kind, options=options)
            self._stream = self._container.add_stream(codec, rate=self.sample_rate)
            self._stream.layout = "mono"
            if self.format is not AudioFormat.OPUS:
                self._stream.bit_rate = 64_000

    @property
    def duration_s(self) -> float:
        return self._samples / self.sample_rate

    def push(self, samples: np.ndarray) -> bytes:
        x = np.nan_to_num(np.asarray(samples, dtype=np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=False)
        return self._encode(np.clip(x, -1.0, 1.0).astype(np.float32, copy=False), last=False)

    def finish(self) -> bytes:
        tail = np.zeros(0, np.float32)
        if self._resampler is not None:
            tail = np.clip(self._resampler.resample_chunk(tail, last=True), -1.0, 1.0).astype(np.float32)
        return self._encode(tail, last=True)

    def _encode(self, x: np.ndarray, *, last: bool) -> bytes:
        self._samples += len(x)
        head = b""
        if not self._started:
            self._started = True
            if self.format is AudioFormat.WAV:
                head = wav_header(None, self.sample_rate)
        if self._container is None:  # pcm, wav
            return head + to_pcm16(x)
        import av

        if len(x):
            frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = self.sample_rate
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        if last:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        return head + self._sink.drain()
