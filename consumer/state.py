"""Job state in S3 — the only state a job has outside the queue message.

Layout under `{jobs_prefix}/{job_id}/`:
- `claim.json`  INPROGRESS: who works on the job and until when (the message's visibility deadline).
                Created with `If-None-Match: *`, renewed and taken over with `If-Match: <etag>`.
- `result.json` COMPLETED or FAILED: the final event, written once (`If-None-Match: *`).

A redelivered message finds `result.json` and republishes the same event instead of synthesizing again;
a duplicate delivered while another worker holds a live claim is left for later.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws import error_code, http_status
from consumer.errors import JobInProgressElsewhere, LeaseLost, StorageError
from contracts.events import SynthesisCompleted, SynthesisFailed, parse_event

_PRECONDITION_FAILED = {"PreconditionFailed", "ConditionalRequestConflict"}


class JobStatus(StrEnum):
    INPROGRESS = "INPROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Claim:
    job_id: str
    worker_id: str
    expires_at: datetime
    etag: str


def _now() -> datetime:
    return datetime.now(UTC)


def _is_conflict(exc: ClientError) -> bool:
    return error_code(exc) in _PRECONDITION_FAILED or http_status(exc) in (409, 412)


class JobStore:
    """Claims and results of jobs, as conditional writes to S3."""

    def __init__(self, s3: Any, bucket: str, prefix: str, clock: Any = _now) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._clock = clock

    def _key(self, job_id: str, name: str) -> str:
        return f"{self._prefix}/{job_id}/{name}"

    # --- results -----------------------------------------------------------------------------------------
    def result(self, job_id: str) -> SynthesisCompleted | SynthesisFailed | None:
        """The final event of a finished job, or None while it is not finished."""
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self._key(job_id, "result.json"))["Body"].read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"reading result of {job_id}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"reading result of {job_id}: {exc}") from exc
        return parse_event(body)

    def record_result(self, event: SynthesisCompleted | SynthesisFailed) -> SynthesisCompleted | SynthesisFailed:
        """Write the final event once. If another worker already wrote one, that one wins and is returned."""
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._key(event.job_id, "result.json"),
                Body=event.model_dump_json().encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
            return event
        except ClientError as exc:
            if _is_conflict(exc):
                existing = self.result(event.job_id)
                if existing is not None:
                    return existing
            raise StorageError(f"recording result of {event.job_id}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"recording result of {event.job_id}: {exc}") from exc

    # --- claims ------------------------------------------------------------------------------------------
    def claim(self, job_id: str, worker_id: str, ttl_s: float, message_id: str = "") -> Claim:
        """Take the job for `ttl_s` seconds. Raises `JobInProgressElsewhere` while another live claim exists;
        an expired claim (its worker died) is taken over."""
        expires_at = self._clock() + timedelta(seconds=ttl_s)
        body = self._claim_body(job_id, worker_id, expires_at, message_id)
        try:
            etag = self._put(job_id, body, IfNoneMatch="*")
            return Claim(job_id, worker_id, expires_at, etag)
        except ClientError as exc:
            if not _is_conflict(exc):
                raise StorageError(f"claiming {job_id}: {exc}") from exc
        current, current_etag = self._read_claim(job_id)
        if current is None:  # released between our put and our read: try once more
            return self.claim(job_id, worker_id, ttl_s, message_id)
        holder_expires = datetime.fromisoformat(current["expires_at"])
        remaining = (holder_expires - self._clock()).total_seconds()
        if remaining > 0 and current["worker_id"] != worker_id:
            raise JobInProgressElsewhere(
                f"job {job_id} is held by {current['worker_id']} for {remaining:.0f}s more",
                retry_in_s=int(remaining) + 1,
            )
        try:  # expired (or our own stale claim): take it over, atomically against other takers
            etag = self._put(job_id, body, IfMatch=current_etag)
        except ClientError as exc:
            if _is_conflict(exc):
                raise JobInProgressElsewhere(f"job {job_id} was just taken over", retry_in_s=5) from exc
            raise StorageError(f"taking over {job_id}: {exc}") from exc
        return Claim(job_id, worker_id, expires_at, etag)

    def renew(self, claim: Claim, ttl_s: float) -> Claim:
        """Extend our claim. Raises `LeaseLost` if someone else took the job over."""
        expires_at = self._clock() + timedelta(seconds=ttl_s)
        body = self._claim_body(claim.job_id, claim.worker_id, expires_at, "")
        try:
            etag = self._put(claim.job_id, body, IfMatch=claim.etag)
        except ClientError as exc:
            if _is_conflict(exc) or error_code(exc) in ("NoSuchKey", "404"):
                raise LeaseLost(f"claim on {claim.job_id} was taken over") from exc
            raise StorageError(f"renewing claim on {claim.job_id}: {exc}") from exc
        return Claim(claim.job_id, claim.worker_id, expires_at, etag)

    def release(self, claim: Claim) -> None:
        """Drop our claim so another worker may start at once (best effort: it expires anyway)."""
        current, etag = self._read_claim(claim.job_id)
        if current is not None and etag == claim.etag:
            self._s3.delete_object(Bucket=self._bucket, Key=self._key(claim.job_id, "claim.json"))

    def _claim_body(self, job_id: str, worker_id: str, expires_at: datetime, message_id: str) -> bytes:
        record = {
            "status": JobStatus.INPROGRESS.value,
            "job_id": job_id,
            "worker_id": worker_id,
            "message_id": message_id,
            "claimed_at": self._clock().isoformat(),
            "expires_at": expires_at.isoformat(),
        }
        return json.dumps(record).encode()

    def _put(self, job_id: str, body: bytes, **condition: str) -> str:
        response = self._s3.put_object(
            Bucket=self._bucket,
            Key=self._key(job_id, "claim.json"),
            Body=body,
            ContentType="application/json",
            **condition,
        )
        return str(response["ETag"])

    def _read_claim(self, job_id: str) -> tuple[dict | None, str]:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self._key(job_id, "claim.json"))
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None, ""
            raise StorageError(f"reading claim of {job_id}: {exc}") from exc
        return json.loads(response["Body"].read()), str(response["ETag"])
