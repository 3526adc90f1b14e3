"""`StreamOut`: blocks go to S3 in order on a writer thread, the final file is their bytes (a WAV's header sizes
filled in), and a failed block PUT fails the job instead of leaving a silent gap."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import soundfile as sf

from consumer.core.errors import StorageError
from consumer.worker.stream_out import StreamOut
from contracts.requests import AudioFormat

RATE = 24_000
TONE = (0.3 * np.sin(2 * np.pi * 330 * np.arange(2 * RATE) / RATE)).astype(np.float32)


class Blocks:
    """Records PUTs (from the writer thread); fails the PUT of block `fail_at`."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.puts: list[tuple[int, bytes, int, bool, int | None, str]] = []

    def put(self, prefix: str, seq: int, data: bytes, offset: int, *, last: bool, next_ms: int | None) -> None:
        if seq == self.fail_at:
            raise StorageError(f"writing stream block {seq}: SlowDown")
        self.puts.append((seq, data, offset, last, next_ms, threading.current_thread().name))


def test_blocks_are_put_in_order_off_the_engine_thread_and_make_the_final_file(tmp_path):
    blocks = Blocks()
    with StreamOut(blocks, "streams/j/1/1-m", AudioFormat.WAV, RATE, scratch_dir=tmp_path) as out:  # type: ignore[arg-type]
        for piece in np.array_split(TONE, 5):
            out.write(piece)
        final = out.finish()
        data = final.path.read_bytes()
        assert [p[0] for p in blocks.puts] == [0, 1, 2, 3, 4] and out.keys()[-1] == "streams/j/1/1-m/00004"
        assert {p[5] for p in blocks.puts} == {"stream-blocks"}
        assert [p[2] for p in blocks.puts] == np.cumsum([0] + [len(p[1]) for p in blocks.puts[:-1]]).tolist()
        streamed = b"".join(p[1] for p in blocks.puts)
        assert streamed[44:] == data[44:] and streamed[4:8] == b"\xff\xff\xff\xff"
        samples, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == RATE and len(samples) == len(TONE) and final.bytes == len(data)
        assert all(p[4] is not None for p in blocks.puts)  # each block says when the next is due
    assert not final.path.exists()  # the scratch file goes with the context


def test_a_failed_block_put_fails_the_job_at_its_next_write_or_at_finish(tmp_path):
    blocks = Blocks(fail_at=1)
    with StreamOut(blocks, "p", AudioFormat.PCM, RATE, scratch_dir=tmp_path) as out:  # type: ignore[arg-type]
        out.write(TONE[:1000])
        out.write(TONE[1000:2000])
        with pytest.raises(StorageError, match="block 1"):
            for piece in np.array_split(TONE[2000:], 50):
                out.write(piece)
            out.finish()
    assert [p[0] for p in blocks.puts] == [0]  # nothing after the gap
