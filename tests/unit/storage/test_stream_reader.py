"""`StreamReader` against a real moto server: it follows the attempt the record names, switches to the next
attempt's sequence at the same block index when the first one dies, finishes from the final object's byte
offset once the job completes, and raises for a failed job; `StreamBlocks.remove` deletes every attempt's blocks."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.core.errors import JobTimeoutError, StreamFailed
from consumer.storage.job_record import StreamRef
from consumer.storage.jobs import JobStore
from consumer.storage.stream_blocks import StreamBlocks, sequence_prefix
from consumer.storage.stream_reader import StreamReader
from contracts.codes import ErrorCode
from contracts.events import AudioOutput, SynthesisCompleted, SynthesisFailed, Timings
from contracts.requests import AudioFormat

BLOCKS = [b"block-0|", b"block-1|", b"block-2|", b"block-3|"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _stores(stack, clock: Clock | None = None) -> tuple[JobStore, StreamBlocks, StreamReader]:
    jobs = JobStore(stack.clients.s3, stack.resources.bucket, "jobs", clock=clock or Clock())
    reader = StreamReader(stack.clients.s3, jobs, stack.resources.bucket, first_poll_s=0.02, poll_s=0.02, record_s=0.2)
    return jobs, StreamBlocks(stack.clients.s3, stack.resources.bucket), reader


def _completed(stack, job_id: str, data: bytes) -> SynthesisCompleted:
    key = f"outputs/{job_id}.pcm"
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=data)
    output = AudioOutput(
        uri=f"s3://{stack.resources.bucket}/{key}",
        bucket=stack.resources.bucket,
        key=key,
        format=AudioFormat.PCM,
        content_type="audio/L16",
        sample_rate=24_000,
        duration_s=1.0,
        bytes=len(data),
        sha256="0" * 64,
    )
    return SynthesisCompleted(
        event_id="e",
        job_id=job_id,
        attempt=1,
        output=output,
        timings=Timings(queue_wait_s=0, synthesis_s=1, total_s=1, real_time_factor=1),
        model_id="fake",
        seed=1,
        text_chars=1,
        worker_id="w",
        occurred_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def _read_in_background(
    reader: StreamReader, job_id: str, timeout_s: float = 20
) -> tuple[list[bytes], threading.Thread]:
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.extend(reader.blocks(job_id, timeout_s)), daemon=True)
    thread.start()
    return got, thread


def _wait_for(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_dead_attempts_stream_resumes_on_the_next_attempts_sequence(stack):
    clock = Clock()
    jobs, blocks, reader = _stores(stack, clock)
    first = jobs.claim("j1", "worker-a", ttl_s=5, message_id="m1", attempt=1)
    p1 = sequence_prefix("j1", first.generation, 1, "m1")
    got, thread = _read_in_background(reader, "j1")
    for seq in (0, 1):
        blocks.put(p1, seq, BLOCKS[seq], 0, last=False, next_ms=10)
    _wait_for(lambda: len(got) == 2)
    clock.now += timedelta(seconds=6)  # worker-a died: its claim runs out, worker-b takes the job over
    second = jobs.claim("j1", "worker-b", ttl_s=60, message_id="m1", attempt=2)
    p2 = sequence_prefix("j1", second.generation, 2, "m1")
    assert p2 != p1
    for seq, data in enumerate(BLOCKS):  # the next attempt makes the same blocks again
        blocks.put(p2, seq, data, 0, last=seq == len(BLOCKS) - 1, next_ms=10)
    thread.join(timeout=10)
    assert got == BLOCKS, "blocks 0-1 from the dead attempt, 2-3 from the next: no gap, no repeat"


def test_a_completed_job_ends_the_stream_from_the_final_objects_offset(stack):
    jobs, blocks, reader = _stores(stack)
    claim = jobs.claim("j2", "worker-a", ttl_s=60, message_id="m1", attempt=1)
    prefix = sequence_prefix("j2", 1, 1, "m1")
    got, thread = _read_in_background(reader, "j2")
    blocks.put(prefix, 0, BLOCKS[0], 0, last=False, next_ms=10)
    _wait_for(lambda: len(got) == 1)
    whole = b"".join(BLOCKS)
    ref = StreamRef(prefix=prefix, blocks=4, bytes=len(whole))
    jobs.complete(claim, _completed(stack, "j2", whole), stream=ref)
    assert blocks.remove("j2") == 1  # removed before the reader saw the rest
    thread.join(timeout=10)
    assert b"".join(got) == whole
    assert stack.objects("streams/j2/") == []


def test_a_failed_job_raises_with_its_event(stack):
    jobs, _blocks, reader = _stores(stack)
    claim = jobs.claim("j3", "worker-a", ttl_s=60, message_id="m1", attempt=1)
    failure = SynthesisFailed(
        event_id="f",
        job_id="j3",
        error_code=ErrorCode.CANCELLED,
        error_message="cancelled by test",
        retryable=False,
        attempt=1,
        worker_id="w",
        occurred_at=datetime(2030, 1, 1, tzinfo=UTC),
    )
    jobs.fail(claim, failure)
    with pytest.raises(StreamFailed, match="cancelled by test") as failed:
        list(reader.blocks("j3", timeout_s=5))
    assert failed.value.event == failure


def test_a_job_nobody_takes_times_out_and_stop_ends_the_read_early(stack):
    _jobs, _blocks, reader = _stores(stack)
    with pytest.raises(JobTimeoutError):
        list(reader.blocks("never", timeout_s=0.3))
    started = time.monotonic()
    assert list(reader.blocks("never", timeout_s=30, stop=lambda: time.monotonic() - started > 0.2)) == []
    assert time.monotonic() - started < 2
