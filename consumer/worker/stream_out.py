"""A streamed job's output: each engine block is encoded, written to S3 as the sequence's next block, and appended to a
scratch file that becomes the final object, so the final object is the blocks' bytes (a WAV's header aside: the
stream's says "size unknown", the file's gets the sizes).

A block is written only when the encoder has bytes for it; the encoder's last bytes (`finish`: a lossy codec's
flush) go in a block marked `last`, and when there are none, the job's completed record ends the stream. Each block
says when the next is expected (`next-ms`), so a reader asks for it about then rather than polling: at once when
the next is already made (the engine yields a group of chunks together), else after as long as this group took,
scaled by the next group's expected size. The PUTs run on a thread of their own, in order, so the engine makes the
next chunk while a block uploads (the device never waits on S3); a failed PUT fails the job at its next block or at
`finish`."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from consumer.audio.longform import EncodedFile
from consumer.audio.stream_encoding import WAV_HEADER_BYTES, StreamEncoder, wav_header
from consumer.storage.stream_blocks import StreamBlocks, block_key
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
        self._started = time.monotonic()
        self._puts: queue.Queue[tuple[int, bytes, int, bool, int | None] | None] = queue.Queue()
        self._failure: BaseException | None = None
        self._writer = threading.Thread(target=self._upload, name="stream-blocks", daemon=True)
        self._writer.start()

    def __enter__(self) -> StreamOut:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop_writer()
        if not self._file.closed:
            self._file.close()
        self._dir.cleanup()

    def write(self, samples: np.ndarray) -> None:
        self._put(self._encoder.push(samples), last=False)

    def finish(self) -> EncodedFile:
        """The last block (every block uploaded when this returns), then the final object's file."""
        self._put(self._encoder.finish(), last=True)
        self._stop_writer()
        self._raise_failure()
        self._file.close()
        enc = self._encoder
        if enc.format is AudioFormat.WAV:
            with self._path.open("r+b") as f:
                f.write(wav_header(self.bytes - WAV_HEADER_BYTES, enc.sample_rate))
        return EncodedFile(self._path, enc.format, enc.content_type, enc.sample_rate, enc.duration_s, self.bytes)

    def keys(self) -> list[str]:
        """The blocks written so far."""
        return [block_key(self.prefix, seq) for seq in range(self.seq)]

    def _put(self, data: bytes, *, last: bool) -> None:
        self._raise_failure()
        if not data:
            return
        self._puts.put((self.seq, data, self.bytes, last, None if last else 0))  # `_upload` sets the hint
        self._file.write(data)
        self.seq += 1
        self.bytes += len(data)

    def _upload(self) -> None:
        burst, last_burst, burst_end = 0, 1, self._started  # blocks made together (an engine's group of chunks)
        while (item := self._puts.get()) is not None:
            if self._failure is not None:
                continue  # the job fails: later blocks are not written
            seq, data, offset, last, next_ms = item
            burst += 1
            if next_ms is not None:
                if not self._puts.empty():
                    next_ms = 0  # the next block is already made: ask for it at once
                else:  # the burst's last block: the next burst as long as this one took, scaled by its size
                    now = time.monotonic()
                    next_ms = int((now - burst_end) * burst / last_burst * 1000)
                    burst, last_burst, burst_end = 0, burst, now
            try:
                self._blocks.put(self.prefix, seq, data, offset, last=last, next_ms=next_ms)
            except BaseException as exc:  # noqa: BLE001 - raised in the job's thread
                self._failure = exc

    def _stop_writer(self) -> None:
        if self._writer.is_alive():
            self._puts.put(None)
            self._writer.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure
