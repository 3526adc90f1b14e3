"""Job state in S3 — the only state a job has outside its queue message.

One record per job, `{jobs_prefix}/{job_id}.json`, a small state machine driven by conditional writes:

    (none) ──claim: If-None-Match *──▶ INPROGRESS(worker, expires_at)
    INPROGRESS ──renew: If-Match etag──▶ INPROGRESS(later expires_at)
    INPROGRESS ──complete: If-Match etag──▶ COMPLETED(event)
    INPROGRESS ──release: If-Match etag──▶ INPROGRESS(expired)       (retry, shutdown)
    INPROGRESS(expired) ──take over: If-Match etag──▶ INPROGRESS(new worker)

The common path costs one write to claim and one to complete. A claim on a COMPLETED record returns its
event (redelivery → replay); a live claim by another worker raises `JobInProgressElsewhere`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_conflict, is_missing, storage_errors
from consumer.aws.retry import aws_retry
from consumer.core.errors import JobAlreadyCompleted, JobInProgressElsewhere, LeaseLost
from contracts.events import SynthesisCompleted, parse_event


class JobStatus(StrEnum):
    INPROGRESS = "INPROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class Claim:
    job_id: str
    worker_id: str
    expires_at: datetime
    etag: str
    fresh: bool  # True: no earlier attempt ever claimed this job (nothing to reuse)


def _now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    """Claims and results of jobs, as conditional writes to one S3 object per job."""

    def __init__(self, s3: Any, bucket: str, prefix: str, clock: Any = _now) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._clock = clock

    def key(self, job_id: str) -> str:
        return f"{self._prefix}/{job_id}.json"

    # --- reads ---------------------------------------------------------------------------------------------
    def read(self, job_id: str) -> tuple[dict | None, str]:
        """(record, etag), or (None, "") when the job was never claimed."""
        with storage_errors(f"reading record of {job_id}"):
            try:
                response = aws_retry(self._s3.get_object)(Bucket=self._bucket, Key=self.key(job_id))
            except ClientError as exc:
                if is_missing(exc):
                    return None, ""
                raise
        return json.loads(response["Body"].read()), str(response["ETag"])

    def result(self, job_id: str) -> SynthesisCompleted | None:
        """The completion event of a finished job, or None."""
        record, _ = self.read(job_id)
        if record is None or record["status"] != JobStatus.COMPLETED:
            return None
        event = parse_event(json.dumps(record["event"]))
        assert isinstance(event, SynthesisCompleted)
        return event

    # --- transitions ---------------------------------------------------------------------------------------
    def claim(self, job_id: str, worker_id: str, ttl_s: float, message_id: str = "") -> Claim:
        """Take the job for `ttl_s` seconds. Raises `JobAlreadyCompleted` (replay its event),
        `JobInProgressElsewhere` (a live claim exists), or takes an expired claim over."""
        expires_at = self._clock() + timedelta(seconds=ttl_s)
        body = self._inprogress(job_id, worker_id, expires_at, message_id)
        etag = self._put(job_id, body, IfNoneMatch="*")
        if etag is not None:
            return Claim(job_id, worker_id, expires_at, etag, fresh=True)
        record, current_etag = self.read(job_id)
        if record is None:  # released and deleted between our two calls: start over
            return self.claim(job_id, worker_id, ttl_s, message_id)
        if record["status"] == JobStatus.COMPLETED:
            event = parse_event(json.dumps(record["event"]))
            assert isinstance(event, SynthesisCompleted)
            raise JobAlreadyCompleted(event)
        remaining = (datetime.fromisoformat(record["expires_at"]) - self._clock()).total_seconds()
        if remaining > 0 and record["worker_id"] != worker_id:
            raise JobInProgressElsewhere(
                f"job {job_id} is held by {record['worker_id']} for {remaining:.0f}s more",
                retry_in_s=int(remaining) + 1,
            )
        etag = self._put(job_id, body, IfMatch=current_etag)
        if etag is None:
            raise JobInProgressElsewhere(f"job {job_id} was just taken over by another worker", retry_in_s=5)
        return Claim(job_id, worker_id, expires_at, etag, fresh=False)

    def renew(self, claim: Claim, ttl_s: float) -> Claim:
        """Extend our claim. Raises `LeaseLost` if another worker took the job over."""
        expires_at = self._clock() + timedelta(seconds=ttl_s)
        etag = self._put(claim.job_id, self._inprogress(claim.job_id, claim.worker_id, expires_at), IfMatch=claim.etag)
        if etag is None:
            raise LeaseLost(f"claim on {claim.job_id} was taken over")
        return Claim(claim.job_id, claim.worker_id, expires_at, etag, claim.fresh)

    def complete(self, claim: Claim, event: SynthesisCompleted) -> None:
        """Record the completion. Raises `LeaseLost` if another worker took the job over meanwhile
        (it will find the uploaded audio and finish the job)."""
        record = {
            "status": JobStatus.COMPLETED.value,
            "job_id": claim.job_id,
            "worker_id": claim.worker_id,
            "completed_at": self._clock().isoformat(),
            "event": json.loads(event.model_dump_json()),
        }
        if self._put(claim.job_id, json.dumps(record).encode(), IfMatch=claim.etag) is None:
            raise LeaseLost(f"claim on {claim.job_id} was taken over before completion")

    def release(self, claim: Claim) -> None:
        """Expire our claim at once so the next attempt need not wait for it (no-op if no longer ours)."""
        body = self._inprogress(claim.job_id, claim.worker_id, self._clock() - timedelta(seconds=1))
        self._put(claim.job_id, body, IfMatch=claim.etag)

    # --- helpers -------------------------------------------------------------------------------------------
    def _inprogress(self, job_id: str, worker_id: str, expires_at: datetime, message_id: str = "") -> bytes:
        record = {
            "status": JobStatus.INPROGRESS.value,
            "job_id": job_id,
            "worker_id": worker_id,
            "message_id": message_id,
            "expires_at": expires_at.isoformat(),
        }
        return json.dumps(record).encode()

    def _put(self, job_id: str, body: bytes, **condition: str) -> str | None:
        """Conditional put. Returns the new ETag, or None when the condition failed."""
        with storage_errors(f"writing record of {job_id}"):
            try:
                # A retried conditional put whose first try landed answers 412: claim() then finds its own
                # worker id on the record and takes it over, so the retry is safe.
                response = aws_retry(self._s3.put_object)(
                    Bucket=self._bucket, Key=self.key(job_id), Body=body, ContentType="application/json", **condition
                )
            except ClientError as exc:
                if is_conflict(exc) or ("IfMatch" in condition and is_missing(exc)):
                    return None
                raise
        return str(response["ETag"])
