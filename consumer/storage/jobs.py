"""Job state in S3 — the only state a job has outside its queue message.

One record per job, `{jobs_prefix}/{job_id}.json`, a small state machine driven by conditional writes (every
write after the first is `If-Match` on the ETag the writer read, so a stale writer always loses):

    (none) ──claim: If-None-Match *──▶ INPROGRESS(owner, expires_at, generation 1)
    INPROGRESS ──renew──▶ INPROGRESS(later expires_at, progress: chunk i of n)
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

Cancelling adds a field, not a state (`request_cancel`): a `cancel` object on an INPROGRESS or RELEASED record
(or on a new RELEASED record when no worker has seen the job yet). The owner's next write finds it (its
If-Match fails on the cancel's write alone; it re-reads, keeps the cancel and writes again) and stops; a worker
that takes the job over finds it in the record it claims. Claims and outcomes are also noted in the time index
(`consumer/storage/job_index.py`) for listings.
"""

from __future__ import annotations

import contextlib
import json
import uuid
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
from consumer.storage.job_index import JobIndex
from contracts.codes import ErrorCode
from contracts.events import SynthesisCompleted, SynthesisFailed, parse_event

DELIVERY_LOG_SIZE = 10  # attempts kept per record (the newest)


class JobStatus(StrEnum):
    INPROGRESS = "INPROGRESS"
    RELEASED = "RELEASED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED)


class CancelResult(StrEnum):
    QUEUED = "queued"  # no worker holds it: the next one to receive it records the cancellation
    RUNNING = "running"  # a worker holds it: it stops at its next claim write (heartbeat or progress)
    FINISHED = "finished"  # too late: the job already has an outcome


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
    started_at: str = ""  # ISO time this attempt claimed the job
    progress: dict[str, Any] | None = None  # {"chunk": i, "chunks": n, "eta_s": ...}, written by the owner
    cancel: dict[str, Any] | None = None  # set once someone asked to cancel the job
    # The delivery that reopened this generation (a redrive or re-send): {"message_id", "receive"}. A queue may
    # keep a redriven message's id and receive count (LocalStack does): the generation's own attempt number is
    # then counted from here, so one redrive always gets the full retry budget.
    opened: dict[str, Any] | None = None

    def attempt_in_generation(self, message_id: str, receive_count: int) -> int:
        """This delivery's attempt number within the claim's generation."""
        if self.opened and self.opened.get("message_id") == message_id:
            return receive_count - int(self.opened.get("receive", 1)) + 1
        return receive_count


@dataclass(frozen=True)
class Terminal:
    """A finished job as recorded: its outcome event, the webhook it goes to, and its delivery state."""

    event: SynthesisCompleted | SynthesisFailed
    webhook_url: str | None
    delivery: dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _write_id() -> str:
    """Makes every state write's body unique: a record equal to a body we sent is our own write, stored."""
    return uuid.uuid4().hex


def _delivered(record: dict[str, Any]) -> bool:
    return (record.get("delivery") or {}).get("state") == DeliveryState.DELIVERED


def _event(record: dict[str, Any]) -> SynthesisCompleted | SynthesisFailed:
    return parse_event(json.dumps(record["event"]))


@dataclass(frozen=True)
class _Put:
    """A conditional PUT's answer: the new ETag when it was stored; else the record as it is now."""

    etag: str | None
    current: dict[str, Any] | None = None
    current_etag: str = ""


class JobStore:
    """Claims and outcomes of jobs, as conditional writes to one S3 object per job."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        clock: Callable[[], datetime] = _now,
        index: JobIndex | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._clock = clock
        self.index = index

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
        now = self._clock()
        expires_at = now + timedelta(seconds=ttl_s)
        fresh = Claim(job_id, worker_id, expires_at, "", True, 1, message_id, attempt, now.isoformat())
        put = self._put(job_id, self._inprogress(fresh), IfNoneMatch="*")
        if put.etag is not None:
            self._note(job_id, JobStatus.INPROGRESS)
            return replace(fresh, etag=put.etag)
        record, current_etag = put.current, put.current_etag
        if record is None:  # deleted between our two calls (record expiry): start over
            return self.claim(job_id, worker_id, ttl_s, message_id, attempt)
        status = record["status"]
        generation = int(record.get("generation", 1))
        cancel = record.get("cancel")
        opened = record.get("opened")
        if status == JobStatus.COMPLETED:
            completed = _event(record)
            assert isinstance(completed, SynthesisCompleted)
            raise JobAlreadyCompleted(completed, record.get("webhook_url"), _delivered(record))
        if status == JobStatus.FAILED:
            failure = record.get("failure", {})
            # The message that failed, delivered again, replays its failure; only a redrive reopens it. A
            # redriven message may keep its MessageId (LocalStack's move task does), but its receive count then
            # goes on past the failure's; a delivery at or below it is a stale one (received before the
            # failure, held by a paused worker) and must not open a generation.
            redriven = failure.get("redrivable", False) and attempt > int(failure.get("attempt", 0))
            if failure.get("message_id") == message_id and not redriven:
                failed = _event(record)
                assert isinstance(failed, SynthesisFailed)
                raise JobAlreadyFailed(failed, record.get("webhook_url"), _delivered(record))
            generation += 1  # a re-send or a redrive: the job runs again
            cancel = None
            opened = {"message_id": message_id, "receive": attempt}
        elif status == JobStatus.INPROGRESS:
            remaining = (datetime.fromisoformat(record["expires_at"]) - self._clock()).total_seconds()
            if remaining > 0 and record["worker_id"] != worker_id:
                raise JobInProgressElsewhere(
                    f"job {job_id} is held by {record['worker_id']} for {remaining:.0f}s more",
                    retry_in_s=int(remaining) + 1,
                )
        taken = Claim(
            job_id,
            worker_id,
            expires_at,
            "",
            False,
            generation,
            message_id,
            attempt,
            now.isoformat(),
            None,
            cancel,
            opened,
        )
        put = self._put(job_id, self._inprogress(taken), IfMatch=current_etag)
        if put.etag is None:
            raise JobInProgressElsewhere(f"job {job_id} was just taken over by another worker", retry_in_s=5)
        self._note(job_id, JobStatus.INPROGRESS)
        return replace(taken, etag=put.etag)

    def renew(self, claim: Claim, ttl_s: float, progress: dict[str, Any] | None = None) -> Claim:
        """Extend our claim (and record the latest progress). Raises `LeaseLost` if another worker took the job
        over. The returned claim's `cancel` is set once someone asked to cancel the job."""
        renewed = replace(claim, expires_at=self._clock() + timedelta(seconds=ttl_s), progress=progress)
        return self._rewrite(renewed, self._inprogress)

    def report_progress(self, claim: Claim, progress: dict[str, Any]) -> Claim:
        """Record progress without extending the claim (its expiry stays tied to the message's visibility)."""
        return self._rewrite(replace(claim, progress=progress), self._inprogress)

    def complete(self, claim: Claim, event: SynthesisCompleted, webhook_url: str | None = None) -> None:
        """Record the completion (final; a cancel that came too late is ignored). Raises `LeaseLost` if another
        worker took the job over meanwhile (it will find the uploaded audio and finish the job)."""
        self._rewrite(
            claim,
            lambda c: self._terminal_record(c, JobStatus.COMPLETED, event, webhook_url),
            "was taken over before completion",
        )
        self._note(claim.job_id, JobStatus.COMPLETED)

    def fail(
        self, claim: Claim, event: SynthesisFailed, webhook_url: str | None = None, *, redrivable: bool = False
    ) -> None:
        """Record a failure with our claim. `redrivable`: the message goes to the DLQ (retries ran out), so its
        next delivery can only be a redrive. Raises `LeaseLost` if the job is no longer ours."""
        self._rewrite(
            claim,
            lambda c: self._terminal_record(c, JobStatus.FAILED, event, webhook_url, redrivable=redrivable),
            "was taken over before the failure was recorded",
        )
        self._note(claim.job_id, JobStatus.FAILED, event.error_code.value)

    def request_cancel(self, job_id: str, by: str, reason: str = "") -> CancelResult:
        """Ask for the job to be cancelled (a field on its record, written with If-Match/If-None-Match)."""
        cancel = {"by": by, "reason": reason, "at": self._clock().isoformat()}
        for _ in range(8):
            record, etag = self.read(job_id)
            if record is None:
                body = {"status": JobStatus.RELEASED.value, "job_id": job_id, "generation": 1, "cancel": cancel}
                if self._put(job_id, json.dumps(body).encode(), IfNoneMatch="*").etag is not None:
                    return CancelResult.QUEUED  # indexed when a worker receives it
                continue
            if record["status"] in TERMINAL:
                return CancelResult.FINISHED
            record["cancel"] = record.get("cancel") or cancel
            if self._put(job_id, json.dumps(record).encode(), IfMatch=etag).etag is not None:
                running = record["status"] == JobStatus.INPROGRESS and (
                    datetime.fromisoformat(record["expires_at"]) > self._clock()
                )
                return CancelResult.RUNNING if running else CancelResult.QUEUED
        raise StorageError(f"record of {job_id} kept changing while requesting its cancellation")

    def release(self, claim: Claim, reason: str, error_code: ErrorCode | None = None) -> None:
        """Give the job up at once (retry, shutdown) so the next attempt need not wait (no-op if not ours). A
        cancel request stays on the record: the next attempt records the cancellation."""
        released_at = self._clock().isoformat()

        def body(c: Claim) -> bytes:
            record: dict[str, Any] = {
                "status": JobStatus.RELEASED.value,
                "job_id": c.job_id,
                "generation": c.generation,
                "write_id": _write_id(),
                "released": {
                    "reason": reason,
                    "error_code": error_code.value if error_code else None,
                    "by": c.worker_id,
                    "message_id": c.message_id,
                    "attempt": c.attempt,
                    "at": released_at,
                },
            }
            if c.cancel:
                record["cancel"] = c.cancel
            if c.opened:
                record["opened"] = c.opened
            return json.dumps(record).encode()

        with contextlib.suppress(LeaseLost):  # not ours any more: nothing to release
            self._rewrite(claim, body)

    def record_delivery(
        self,
        job_id: str,
        entry: dict[str, Any],
        state: DeliveryState | None = None,
        *,
        replace_delivered: bool = False,
    ) -> bool:
        """Append a webhook delivery attempt (and optionally a new state) to a finished job's record, with
        If-Match retries against concurrent writers. A delivered state stays unless `replace_delivered` (a manual
        redelivery says what happened this time). Returns False when the job has no terminal record."""
        for _ in range(8):
            record, etag = self.read(job_id)
            if record is None or record["status"] not in TERMINAL:
                return False
            delivery = record.setdefault("delivery", {"state": DeliveryState.PENDING.value, "attempts": []})
            delivery["attempts"] = [*delivery.get("attempts", []), entry][-DELIVERY_LOG_SIZE:]
            delivery["count"] = int(delivery.get("count", 0)) + 1
            if state is not None and (replace_delivered or delivery.get("state") != DeliveryState.DELIVERED):
                delivery["state"] = state.value
            if self._put(job_id, json.dumps(record).encode(), IfMatch=etag).etag is not None:
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
            "started_at": claim.started_at,
            "expires_at": claim.expires_at.isoformat(),
            "progress": claim.progress,
            "write_id": _write_id(),
        }
        if claim.cancel:
            record["cancel"] = claim.cancel
        if claim.opened:
            record["opened"] = claim.opened
        return json.dumps(record).encode()

    def _rewrite(self, claim: Claim, body: Callable[[Claim], bytes], lost: str = "was taken over") -> Claim:
        """PUT `body(claim)` If-Match our ETag. When that fails because someone only added a cancel request to
        our record (same owner and generation), adopt the cancel and write again; otherwise raise `LeaseLost`."""
        put = self._put(claim.job_id, body(claim), IfMatch=claim.etag)
        if put.etag is not None:
            return replace(claim, etag=put.etag)
        record, current = put.current, put.current_etag
        ours = (
            record is not None
            and record["status"] == JobStatus.INPROGRESS
            and record.get("worker_id") == claim.worker_id
            and int(record.get("generation", 1)) == claim.generation
            and record.get("cancel")
        )
        if not ours:
            raise LeaseLost(f"claim on {claim.job_id} {lost}")
        assert record is not None
        cancelled = replace(claim, etag=current, cancel=record["cancel"])
        put = self._put(claim.job_id, body(cancelled), IfMatch=current)
        if put.etag is None:
            raise LeaseLost(f"claim on {claim.job_id} {lost}")
        return replace(cancelled, etag=put.etag)

    def _note(self, job_id: str, status: JobStatus, error_code: str | None = None) -> None:
        if self.index is not None:
            self.index.note(job_id, status.value, self._clock(), error_code)

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
            "started_at": claim.started_at,
            "finished_at": now,
            "event": json.loads(event.model_dump_json()),
            "webhook_url": webhook_url,
            "delivery": {"state": DeliveryState.PENDING.value if webhook_url else None, "attempts": [], "count": 0},
            "write_id": _write_id(),
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

    def _put(self, job_id: str, body: bytes, **condition: str) -> _Put:
        """Conditional put. When the condition fails, the record is read: if it already holds exactly this body,
        an earlier try of this very put was stored and only its response was lost (botocore and `aws_retry` retry
        a dropped connection), so the write succeeded; otherwise the current record comes back to the caller."""
        with storage_errors(f"writing record of {job_id}"):
            try:
                response = aws_retry(self._s3.put_object)(
                    Bucket=self._bucket, Key=self.key(job_id), Body=body, ContentType="application/json", **condition
                )
            except ClientError as exc:
                if not (is_conflict(exc) or ("IfMatch" in condition and is_missing(exc))):
                    raise
                current, etag = self.read(job_id)
                if current is not None and current == json.loads(body):
                    return _Put(etag)
                return _Put(None, current, etag)
        return _Put(str(response["ETag"]))
