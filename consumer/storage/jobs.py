"""Job state in S3 — the only state a job has outside its queue message.

One record per job, `{jobs_prefix}/{job_id}.json`, a small state machine driven by conditional writes (every
write after the first is `If-Match` on the ETag the writer read, so a stale writer always loses):

    (none) ──claim: If-None-Match *──▶ INPROGRESS(owner, expires_at, generation 1)
    INPROGRESS ──renew──▶ INPROGRESS(later expires_at)
    INPROGRESS ──complete──▶ COMPLETED(event)                              final
    INPROGRESS ──fail──▶ FAILED(failure, event)
    INPROGRESS ──release──▶ RELEASED(reason)                               (retry, shutdown)
    RELEASED | INPROGRESS(expired) ──take over──▶ INPROGRESS(new owner, same generation)
    FAILED ──a new message for the job──▶ INPROGRESS(generation + 1)

A COMPLETED record is final: every later claim replays its event. A FAILED record replays its event to
duplicate deliveries of the message that failed, and is reopened as a new generation by any other message for
the job (a producer's re-send, or an operator's redrive of a dead-lettered message: a message whose retries
ran out only comes back through a redrive, so it reopens the job whatever its MessageId). Terminal records
also keep the request's webhook and a short log of webhook deliveries (`record_delivery`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_conflict, is_missing, storage_errors
from consumer.aws.retry import aws_retry
from consumer.core.errors import (
    JobAlreadyCompleted,
    JobAlreadyFailed,
    JobInProgressElsewhere,
    LeaseLost,
    StorageError,
)
from contracts.codes import ErrorCode
from contracts.events import SynthesisCompleted, SynthesisFailed, parse_event

DELIVERY_LOG_SIZE = 10  # attempts kept per record (the newest)


class JobStatus(StrEnum):
    INPROGRESS = "INPROGRESS"
    RELEASED = "RELEASED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED)


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"


@dataclass(frozen=True)
class Claim:
    job_id: str
    worker_id: str
    expires_at: datetime
    etag: str
    fresh: bool  # True: no earlier attempt ever claimed this job (nothing to reuse)
    generation: int = 1
    message_id: str = ""
    attempt: int = 1


@dataclass(frozen=True)
class Terminal:
    """A finished job as recorded: its outcome event, the webhook it goes to, and its delivery state."""

    event: SynthesisCompleted | SynthesisFailed
    webhook_url: str | None
    delivery: dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _delivered(record: dict[str, Any]) -> bool:
    return (record.get("delivery") or {}).get("state") == DeliveryState.DELIVERED


def _event(record: dict[str, Any]) -> SynthesisCompleted | SynthesisFailed:
    return parse_event(json.dumps(record["event"]))


class JobStore:
    """Claims and outcomes of jobs, as conditional writes to one S3 object per job."""

    def __init__(self, s3: Any, bucket: str, prefix: str, clock: Callable[[], datetime] = _now) -> None:
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

    def terminal(self, job_id: str) -> Terminal | None:
        """The recorded outcome of a finished (completed or failed) job, or None."""
        record, _ = self.read(job_id)
        if record is None or record["status"] not in TERMINAL:
            return None
        return Terminal(_event(record), record.get("webhook_url"), record.get("delivery", {}))

    def result(self, job_id: str) -> SynthesisCompleted | SynthesisFailed | None:
        """The outcome event of a finished job, or None."""
        done = self.terminal(job_id)
        return done.event if done else None

    # --- transitions ---------------------------------------------------------------------------------------
    def claim(self, job_id: str, worker_id: str, ttl_s: float, message_id: str = "", attempt: int = 1) -> Claim:
        """Take the job for `ttl_s` seconds. Raises `JobAlreadyCompleted` or `JobAlreadyFailed` (replay the
        recorded event), `JobInProgressElsewhere` (a live claim exists); takes a released or expired claim over
        and reopens a failed job for a new message as its next generation."""
        expires_at = self._clock() + timedelta(seconds=ttl_s)
        fresh = Claim(job_id, worker_id, expires_at, "", True, 1, message_id, attempt)
        etag = self._put(job_id, self._inprogress(fresh), IfNoneMatch="*")
        if etag is not None:
            return replace(fresh, etag=etag)
        record, current_etag = self.read(job_id)
        if record is None:  # deleted between our two calls (record expiry): start over
            return self.claim(job_id, worker_id, ttl_s, message_id, attempt)
        status = record["status"]
        generation = int(record.get("generation", 1))
        if status == JobStatus.COMPLETED:
            completed = _event(record)
            assert isinstance(completed, SynthesisCompleted)
            raise JobAlreadyCompleted(completed, record.get("webhook_url"), _delivered(record))
        if status == JobStatus.FAILED:
            failure = record.get("failure", {})
            if failure.get("message_id") == message_id and not failure.get("redrivable", False):
                failed = _event(record)
                assert isinstance(failed, SynthesisFailed)
                raise JobAlreadyFailed(failed, record.get("webhook_url"), _delivered(record))
            generation += 1  # a re-send or a redrive: the job runs again
        elif status == JobStatus.INPROGRESS:
            remaining = (datetime.fromisoformat(record["expires_at"]) - self._clock()).total_seconds()
            if remaining > 0 and record["worker_id"] != worker_id:
                raise JobInProgressElsewhere(
                    f"job {job_id} is held by {record['worker_id']} for {remaining:.0f}s more",
                    retry_in_s=int(remaining) + 1,
                )
        taken = Claim(job_id, worker_id, expires_at, "", False, generation, message_id, attempt)
        etag = self._put(job_id, self._inprogress(taken), IfMatch=current_etag)
        if etag is None:
            raise JobInProgressElsewhere(f"job {job_id} was just taken over by another worker", retry_in_s=5)
        return replace(taken, etag=etag)

    def renew(self, claim: Claim, ttl_s: float) -> Claim:
        """Extend our claim. Raises `LeaseLost` if another worker took the job over."""
        renewed = replace(claim, expires_at=self._clock() + timedelta(seconds=ttl_s))
        etag = self._put(claim.job_id, self._inprogress(renewed), IfMatch=claim.etag)
        if etag is None:
            raise LeaseLost(f"claim on {claim.job_id} was taken over")
        return replace(renewed, etag=etag)

    def complete(self, claim: Claim, event: SynthesisCompleted, webhook_url: str | None = None) -> None:
        """Record the completion (final). Raises `LeaseLost` if another worker took the job over meanwhile
        (it will find the uploaded audio and finish the job)."""
        record = self._terminal_record(claim, JobStatus.COMPLETED, event, webhook_url)
        if self._put(claim.job_id, record, IfMatch=claim.etag) is None:
            raise LeaseLost(f"claim on {claim.job_id} was taken over before completion")

    def fail(
        self, claim: Claim, event: SynthesisFailed, webhook_url: str | None = None, *, redrivable: bool = False
    ) -> None:
        """Record a failure with our claim. `redrivable`: the message goes to the DLQ (retries ran out), so its
        next delivery can only be a redrive. Raises `LeaseLost` if the job is no longer ours."""
        record = self._terminal_record(claim, JobStatus.FAILED, event, webhook_url, redrivable=redrivable)
        if self._put(claim.job_id, record, IfMatch=claim.etag) is None:
            raise LeaseLost(f"claim on {claim.job_id} was taken over before the failure was recorded")

    def release(self, claim: Claim, reason: str, error_code: ErrorCode | None = None) -> None:
        """Give the job up at once (retry, shutdown) so the next attempt need not wait (no-op if not ours)."""
        record = {
            "status": JobStatus.RELEASED.value,
            "job_id": claim.job_id,
            "generation": claim.generation,
            "released": {
                "reason": reason,
                "error_code": error_code.value if error_code else None,
                "by": claim.worker_id,
                "message_id": claim.message_id,
                "attempt": claim.attempt,
                "at": self._clock().isoformat(),
            },
        }
        self._put(claim.job_id, json.dumps(record).encode(), IfMatch=claim.etag)

    def record_delivery(self, job_id: str, entry: dict[str, Any], state: DeliveryState | None = None) -> bool:
        """Append a webhook delivery attempt (and optionally a new state) to a finished job's record, with
        If-Match retries against concurrent writers. Returns False when the job has no terminal record."""
        for _ in range(8):
            record, etag = self.read(job_id)
            if record is None or record["status"] not in TERMINAL:
                return False
            delivery = record.setdefault("delivery", {"state": DeliveryState.PENDING.value, "attempts": []})
            delivery["attempts"] = [*delivery.get("attempts", []), entry][-DELIVERY_LOG_SIZE:]
            delivery["count"] = int(delivery.get("count", 0)) + 1
            if state is not None and delivery.get("state") != DeliveryState.DELIVERED:
                delivery["state"] = state.value
            if self._put(job_id, json.dumps(record).encode(), IfMatch=etag) is not None:
                return True
        raise StorageError(f"record of {job_id} kept changing while recording a delivery")

    # --- helpers -------------------------------------------------------------------------------------------
    def _inprogress(self, claim: Claim) -> bytes:
        record = {
            "status": JobStatus.INPROGRESS.value,
            "job_id": claim.job_id,
            "generation": claim.generation,
            "worker_id": claim.worker_id,
            "message_id": claim.message_id,
            "attempt": claim.attempt,
            "expires_at": claim.expires_at.isoformat(),
        }
        return json.dumps(record).encode()

    def _terminal_record(
        self,
        claim: Claim,
        status: JobStatus,
        event: SynthesisCompleted | SynthesisFailed,
        webhook_url: str | None,
        *,
        redrivable: bool = False,
    ) -> bytes:
        now = self._clock().isoformat()
        record: dict[str, Any] = {
            "status": status.value,
            "job_id": claim.job_id,
            "generation": claim.generation,
            "worker_id": claim.worker_id,
            "finished_at": now,
            "event": json.loads(event.model_dump_json()),
            "webhook_url": webhook_url,
            "delivery": {"state": DeliveryState.PENDING.value if webhook_url else None, "attempts": [], "count": 0},
        }
        if isinstance(event, SynthesisFailed):
            record["failure"] = {
                "error_code": event.error_code.value,
                "error_message": event.error_message,
                "attempt": claim.attempt,
                "message_id": claim.message_id,
                "redrivable": redrivable,
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
