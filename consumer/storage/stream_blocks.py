"""A streamed job's audio blocks in S3, while the job runs: where they live, how they are written and removed.

    streams/{job_id}/{generation}/{attempt}-{message_id}/{seq:05d}

One sequence per attempt (the delivery that holds the claim: its receive count and MessageId), so a reader
never mixes the blocks of two attempts: the job's record names the attempt that holds the claim, and a
completed record names the sequence that completed (`StreamRef`). Each block is the encoded bytes that became
ready since the last one (`consumer.audio.stream_encoding`); their concatenation is the final object's bytes
(a WAV's header aside, which the stream sends with unknown sizes). Metadata: `last` on the final block,
`next-ms`, the writer's estimate of when the next block lands (readers wait that long before asking).

Blocks are removed once the job's outcome is recorded; a lifecycle rule on `streams/` removes what a killed
worker left behind.
"""

from __future__ import annotations

from typing import Any

from consumer.aws.failures import storage_errors
from consumer.core.logs import get_logger

log = get_logger(__name__)

STREAMS_PREFIX = "streams"
LAST = "last"
NEXT_MS = "next-ms"
OFFSET = "offset"  # the block's first byte within the stream


def attempt_tag(attempt: int, message_id: str) -> str:
    """The attempt part of a sequence's key: a receive count is not unique across messages, a MessageId is."""
    return f"{attempt}-{message_id}"


def sequence_prefix(job_id: str, generation: int, attempt: int, message_id: str) -> str:
    return f"{STREAMS_PREFIX}/{job_id}/{generation}/{attempt_tag(attempt, message_id)}"


def block_key(prefix: str, seq: int) -> str:
    return f"{prefix}/{seq:05d}"


class StreamBlocks:
    """Writes one attempt's blocks and removes a job's blocks (the worker's side)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put(self, prefix: str, seq: int, data: bytes, offset: int, *, last: bool, next_ms: int | None) -> None:
        """One block. Never conditional: the sequence belongs to this attempt alone (a retried PUT rewrites the
        same bytes)."""
        metadata = {OFFSET: str(offset)}
        if last:
            metadata[LAST] = "1"
        if next_ms is not None:
            metadata[NEXT_MS] = str(max(0, next_ms))
        with storage_errors(f"writing stream block {seq} of {prefix}"):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=block_key(prefix, seq),
                Body=data,
                ContentType="application/octet-stream",
                Metadata=metadata,
            )

    def remove(self, job_id: str, known: list[str] | None = None) -> int:
        """Delete a job's blocks: `known` keys in one batch delete (the job's only attempt knows its own), else
        every attempt's, found by a listing (a batch delete per 1,000 keys). Best effort: a failure is logged
        (the lifecycle rule removes them later). Returns the blocks deleted."""
        deleted = 0
        try:
            if known is not None:
                pages: Any = [{"Contents": [{"Key": key} for key in known]}]
            else:
                paginator = self._s3.get_paginator("list_objects_v2")
                pages = paginator.paginate(Bucket=self.bucket, Prefix=f"{STREAMS_PREFIX}/{job_id}/")
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                for i in range(0, len(keys), 1000):
                    batch = keys[i : i + 1000]
                    self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                    deleted += len(batch)
        except Exception as exc:  # noqa: BLE001 - best effort; the lifecycle rule is the net
            log.warning("stream_blocks_not_removed", job_id=job_id, error=str(exc), consequence="lifecycle rule")
        return deleted
