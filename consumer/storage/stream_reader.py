"""Reading a job's audio while it is made: the blocks of the attempt that holds the claim, then the rest.

How a reader learns of new blocks, without listing: the job's record names the attempt that holds the claim
(`InProgress`: generation, receive count, MessageId → its sequence's prefix); the reader GETs block 0, 1, … of
that sequence by key. Each block says when the next is expected (`next-ms`), so the reader asks about then, and
a miss is retried at short gaps (`poll_s`, growing). Before the first block, nothing is known: it asks every
`first_poll_s`, and reads the record again after `record_s`, doubling up to `max_record_s` (a short job may be
done, its blocks removed, before the reader asked). A block overdue by half an interval (at least `late_s`) has
the record read again too, then at the same doubling gaps while blocks stop coming. An attempt that died is
replaced by the next one's sequence, and the reader goes on at the same block index there (the engine and
encoder are deterministic for a job's seed, so the blocks line up); a completed record ends the stream with the
rest of the final object from the byte offset reached (a ranged GET: the final object is the blocks' bytes); a
failed one raises `StreamFailed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_missing, storage_errors
from consumer.core.errors import JobTimeoutError, StreamFailed
from consumer.storage.job_record import Completed, Failed, InProgress
from consumer.storage.jobs import JobStore
from consumer.storage.stream_blocks import LAST, NEXT_MS, block_key, sequence_prefix

FIRST_BLOCK_FAST_S = 2.0  # the first block is asked for every `first_poll_s` this long, then at growing gaps


class StreamReader:
    def __init__(
        self,
        s3: Any,
        jobs: JobStore,
        bucket: str,
        *,
        first_poll_s: float = 0.1,
        poll_s: float = 0.05,
        max_poll_s: float = 1.0,
        record_s: float = 0.5,
        max_record_s: float = 8.0,
        late_s: float = 0.15,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._s3 = s3
        self._jobs = jobs
        self.bucket = bucket
        self.first_poll_s, self.poll_s, self.max_poll_s = first_poll_s, poll_s, max_poll_s
        self.record_s, self.max_record_s, self.late_s = record_s, max_record_s, late_s
        self._sleep = sleep

    def blocks(
        self,
        job_id: str,
        timeout_s: float,
        stop: Callable[[], bool] = lambda: False,
        *,
        expected: str | None = None,
    ) -> Iterator[bytes]:
        """The job's audio bytes as they come, the whole file once concatenated. Raises `StreamFailed` (the job
        failed, or its audio is gone), `JobTimeoutError` after `timeout_s` without the end; returns early when
        `stop()` turns true. `expected`: the sequence the job's first attempt writes (its sender knows the
        MessageId): asked for at once, the record read only on the doubling schedule."""
        started = time.monotonic()
        deadline = started + timeout_s
        prefix: str | None = expected
        seq = sent = 0
        ask_at = started
        record_at = started + (self.record_s if expected else 0.0)
        gap, record_gap = self.first_poll_s, self.record_s
        while not stop():
            now = time.monotonic()
            if now >= deadline:
                raise JobTimeoutError(f"job {job_id} did not finish streaming within {timeout_s:.0f} s")
            if prefix is None or now >= record_at:
                record = self._record(job_id)
                if isinstance(record, Completed):
                    yield from self._rest(record, sent)
                    return
                if isinstance(record, Failed):
                    raise StreamFailed(f"job {job_id} failed: {record.event.error_message}", record.event)
                if isinstance(record, InProgress):
                    prefix = sequence_prefix(job_id, record.generation, record.attempt, record.message_id)
                record_at = now + record_gap
                record_gap = min(2 * record_gap, self.max_record_s)
                if prefix is None:  # queued, or released for another attempt: ask again soon
                    self._sleep(min(gap, max(0.0, deadline - now)))
                    continue
            if now < ask_at:
                self._sleep(min(ask_at, record_at, deadline) - now)
                continue
            block = self._block(prefix, seq)
            if block is None:  # not written yet
                ask_at = time.monotonic() + gap
                # the first block: every `first_poll_s` for a while, then less often (a job may wait in the queue)
                if seq or time.monotonic() - started > FIRST_BLOCK_FAST_S:
                    gap = min(gap * 1.5, self.max_poll_s)
                continue
            data, meta = block
            if data:
                yield data
            seq, sent = seq + 1, sent + len(data)
            if meta.get(LAST):
                return
            # The next block is due one interval (`next-ms`, the writer's last) after this one was found; one
            # overdue by half an interval (at least `late_s`) has the record read: the job may have ended
            # meanwhile (its blocks go once its outcome is recorded: the rest comes from the final object) or
            # moved to another attempt.
            next_s = int(meta.get(NEXT_MS, "0") or 0) / 1000
            ask_at, gap = time.monotonic() + next_s, self.poll_s
            record_at, record_gap = ask_at + max(self.late_s, next_s / 2), self.record_s

    # --- requests ---------------------------------------------------------------------------------------------
    def _record(self, job_id: str) -> Any:
        record, _ = self._jobs.read(job_id)
        return record

    def _block(self, prefix: str, seq: int) -> tuple[bytes, dict[str, str]] | None:
        with storage_errors(f"reading stream block {seq} of {prefix}"):
            try:
                got = self._s3.get_object(Bucket=self.bucket, Key=block_key(prefix, seq))
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise
            return got["Body"].read(), got.get("Metadata", {})

    def _rest(self, record: Completed, sent: int) -> Iterator[bytes]:
        """The final object from byte `sent` on (all of it when nothing was sent)."""
        output = record.event.output
        if sent >= output.bytes:
            return
        with storage_errors(f"reading {output.uri}"):
            try:
                got = self._s3.get_object(Bucket=output.bucket, Key=output.key, Range=f"bytes={sent}-")
            except ClientError as exc:
                if is_missing(exc):
                    raise StreamFailed(f"job {record.job_id} completed but {output.uri} is gone") from exc
                raise
            body = got["Body"]
            while chunk := body.read(1 << 16):
                yield chunk
