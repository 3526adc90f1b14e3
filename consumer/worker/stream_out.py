"""A streamed job's output: each engine block is encoded, written to S3 as the sequence's next block, and
appended to a scratch file that becomes the final object, so the final object is the blocks' bytes (a WAV's
header aside: the stream's says "size unknown", the file's gets the sizes).

A block is written only when the encoder has bytes for it; the last one (`finish`) is always written, marked
`last`, even when empty. Each block says when the next is expected (`next-ms`: the time this one took), so a
reader asks for it about then rather than polling."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from consumer.audio.longform import EncodedFile
from consumer.audio.stream_encoding import WAV_HEADER_BYTES, StreamEncoder, wav_header
from consumer.storage.stream_blocks import StreamBlocks
from contracts.requests import AudioFormat


class StreamOut:
    """Use as a context manager: the scratch file is removed on exit (after the final object's upload)."""

    def __init__(
        self,
        blocks: StreamBlocks,
        prefix: str,
        fmt: AudioFormat,
        sample_rate: int,
        *,
        out_sample_rate: int | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        self.prefix = prefix
        self._blocks = blocks
        self._encoder = StreamEncoder(fmt, sample_rate, out_sample_rate=out_sample_rate)
        self._dir = tempfile.TemporaryDirectory(prefix="f5-stream-", dir=scratch_dir)
        self._path = Path(self._dir.name) / f"audio.{fmt.value}"
        self._file = self._path.open("wb")
        self.seq = 0  # blocks written
        self.bytes = 0
        self._last_put = time.monotonic()
        self._interval_ms: int | None = None

    def __enter__(self) -> StreamOut:
        return self

    def __exit__(self, *_exc: object) -> None:
        if not self._file.closed:
            self._file.close()
        self._dir.cleanup()

    def write(self, samples: np.ndarray) -> None:
        self._put(self._encoder.push(samples), last=False)

    def finish(self) -> EncodedFile:
        """The last block, then the final object's file."""
        self._put(self._encoder.finish(), last=True)
        self._file.close()
        enc = self._encoder
        if enc.format is AudioFormat.WAV:
            with self._path.open("r+b") as f:
                f.write(wav_header(self.bytes - WAV_HEADER_BYTES, enc.sample_rate))
        return EncodedFile(self._path, enc.format, enc.content_type, enc.sample_rate, enc.duration_s, self.bytes)

    def _put(self, data: bytes, *, last: bool) -> None:
        if not data and not last:
            return
        now = time.monotonic()
        if self.seq > 0:
            self._interval_ms = int((now - self._last_put) * 1000)
        self._blocks.put(
            self.prefix, self.seq, data, self.bytes, last=last, next_ms=None if last else self._interval_ms
        )
        self._file.write(data)
        self._last_put = now
        self.seq += 1
        self.bytes += len(data)
