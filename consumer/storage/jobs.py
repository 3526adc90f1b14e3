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
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_conflict, is_missing, storage_errors
from consumer.aws.retry import OPTIMISTIC_WRITE_TRIES
from consumer.core.errors import (
    JobAlreadyCompleted,
    JobAlreadyFailed,
    JobInProgressElsewhere,
    LeaseLost,
    StorageError,
)
from consumer.storage.job_index import NoteSink
from consumer.storage.job_record import (
    DELIVERY_LOG_SIZE,
    TERMINAL,
    CancelRequest,
    ChunkProgress,
    Completed,
    Delivery,
    DeliveryState,
    Failed,
    Failure,
    Finished,
    InProgress,
    JobRecord,
    JobStatus,
    Opened,
    Release,
    Released,
    StreamRef,
    parse_record,
)
from consumer.storage.record_backends import RecordBackend, S3Records
from contracts.codes import ErrorCode
from contracts.events import Event, SynthesisCompleted, SynthesisFailed

__all__ = ["TERMINAL", "CancelResult", "Claim", "DeliveryState", "JobRecord", "JobStatus", "JobStore", "Terminal"]


class CancelResult(StrEnum):
    QUEUED = "queued"  # no worker holds it: the next one to receive it records the cancellation
    RUNNING = "running"  # a worker holds it: it stops at its next claim write (heartbeat or progress)
    FINISHED = "finished"  # too late: the job already has an outcome


@dataclass(frozen=True)
class Claim:
    """A worker's hold on a job: the record it wrote (by ETag) and what the worker needs from it."""

    job_id: str
    worker_id: str
    expires_at: datetime
    etag: str
    fresh: bool  # True: no earlier attempt ever claimed this job (nothing to reuse)
    generation: int = 1
    message_id: str = ""
    attempt: int = 1
    started_at: str = ""  # ISO time this attempt claimed the job
    progress: ChunkProgress | None = None  # written by the owner
    cancel: CancelRequest | None = None  # set once someone asked to cancel the job
    opened: Opened | None = None  # the delivery that reopened this generation (see `Opened`)

    def attempt_in_generation(self, message_id: str, receive_count: int) -> int:
        """This delivery's attempt number within the claim's generation."""
        if self.opened and self.opened.message_id == message_id:
            return receive_count - self.opened.receive + 1
        return receive_count


@dataclass(frozen=True)
class Terminal:
    """A finished job as recorded: its outcome event, the webhook it goes to, and its delivery state."""

    event: Event
    webhook_url: str | None
    delivery: Delivery


def _now() -> datetime:
    return datetime.now(UTC)


def _write_id() -> str:
    """Makes every state write's body unique: a record equal to a body we sent is our own write, stored."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class _Put:
    """A conditional PUT's answer: the new ETag when it was stored; else the record as it is now."""

    etag: str | None
    current: JobRecord | None = None
    current_etag: str = ""


class JobStore:
    """Claims and outcomes of jobs, as conditional writes to one record per job: an S3 object under `prefix`, or
    an item of a DynamoDB table when `records` says so (`consumer.storage.record_backends`)."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        clock: Callable[[], datetime] = _now,
        index: NoteSink | None = None,
        records: RecordBackend | None = None,
    ) -> None:
        self.records: RecordBackend = records or S3Records(s3, bucket, prefix)
        self._clock = clock
        self.index = index

    # --- reads ---------------------------------------------------------------------------------------------
    def read(self, job_id: str) -> tuple[JobRecord | None, str]:
        """(record, etag), or (None, "") when the job was never claimed."""
        with storage_errors(f"reading record of {job_id}"):
            found = self.records.get(job_id)
        if found is None:
            return None, ""
        body, version = found
        return parse_record(body), version

    def terminal(self, job_id: str) -> Terminal | None:
        """The recorded outcome of a finished (completed or failed) job, or None."""
        record, _ = self.read(job_id)
        if not isinstance(record, Completed | Failed):
            return None
        return Terminal(record.event, record.webhook_url, record.delivery)

    def result(self, job_id: str) -> Event | None:
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
        generation, cancel, opened = record.generation, record.cancel, record.opened
        if isinstance(record, Completed):
            raise JobAlreadyCompleted(record.event, record.webhook_url, record.delivered)
        if isinstance(record, Failed):
            failure = record.failure
            # The message that failed, delivered again, replays its failure; only a redrive reopens it. A
            # redriven message may keep its MessageId (LocalStack's move task does), but its receive count then
            # goes on past the failure's; a delivery at or below it is a stale one (received before the
            # failure, held by a paused worker) and must not open a generation.
            redriven = failure.redrivable and attempt > failure.attempt
            if failure.message_id == message_id and not redriven:
                raise JobAlreadyFailed(record.event, record.webhook_url, record.delivered)
            generation += 1  # a re-send or a redrive: the job runs again
            cancel = None
            opened = Opened(message_id=message_id, receive=attempt)
        elif isinstance(record, InProgress):
            remaining = (record.expires_at - self._clock()).total_seconds()
            if remaining > 0 and record.worker_id != worker_id:
                raise JobInProgressElsewhere(
                    f"job {job_id} is held by {record.worker_id} for {remaining:.0f}s more",
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

    def renew(self, claim: Claim, ttl_s: float, progress: ChunkProgress | None = None) -> Claim:
        """Extend our claim (and record the latest progress). Raises `LeaseLost` if another worker took the job
        over. The returned claim's `cancel` is set once someone asked to cancel the job."""
        renewed = replace(claim, expires_at=self._clock() + timedelta(seconds=ttl_s), progress=progress)
        return self._rewrite(renewed, self._inprogress)

    def report_progress(self, claim: Claim, progress: ChunkProgress) -> Claim:
        """Record progress without extending the claim (its expiry stays tied to the message's visibility)."""
        return self._rewrite(replace(claim, progress=progress), self._inprogress)

    def complete(
        self,
        claim: Claim,
        event: SynthesisCompleted,
        webhook_url: str | None = None,
        stream: StreamRef | None = None,
    ) -> None:
        """Record the completion (final; a cancel that came too late is ignored), with a streamed job's block
        sequence. Raises `LeaseLost` if another worker took the job over meanwhile (it will find the uploaded
        audio and finish the job)."""
        self._rewrite(
            claim,
            lambda c: Completed(event=event, stream=stream, **self._finished(c, webhook_url)).dump(),
            "was taken over before completion",
        )
        self._note(claim.job_id, JobStatus.COMPLETED)

    def fail(
        self, claim: Claim, event: SynthesisFailed, webhook_url: str | None = None, *, redrivable: bool = False
    ) -> None:
        """Record a failure with our claim. `redrivable`: the message goes to the DLQ (retries ran out), so its
        next delivery can only be a redrive. Raises `LeaseLost` if the job is no longer ours."""

        def body(c: Claim) -> bytes:
            failure = Failure(
                error_code=event.error_code.value,
                error_message=event.error_message,
                attempt=c.attempt,
                message_id=c.message_id,
                redrivable=redrivable,
            )
            return Failed(event=event, failure=failure, **self._finished(c, webhook_url)).dump()

        self._rewrite(claim, body, "was taken over before the failure was recorded")
        self._note(claim.job_id, JobStatus.FAILED, event.error_code.value)

    def request_cancel(self, job_id: str, by: str, reason: str = "") -> CancelResult:
        """Ask for the job to be cancelled (a field on its record, written with If-Match/If-None-Match)."""
        cancel = CancelRequest(by=by, reason=reason, at=self._clock().isoformat())
        for _ in range(OPTIMISTIC_WRITE_TRIES):
            record, etag = self.read(job_id)
            if record is None:
                queued = Released(job_id=job_id, cancel=cancel)
                if self._put(job_id, queued.dump(), IfNoneMatch="*").etag is not None:
                    return CancelResult.QUEUED  # indexed when a worker receives it
                continue
            if record.terminal:
                return CancelResult.FINISHED
            asked = record.model_copy(update={"cancel": record.cancel or cancel})
            if self._put(job_id, asked.dump(), IfMatch=etag).etag is not None:
                running = isinstance(record, InProgress) and record.live(self._clock())
                return CancelResult.RUNNING if running else CancelResult.QUEUED
        raise StorageError(f"record of {job_id} kept changing while requesting its cancellation")

    def release(self, claim: Claim, reason: str, error_code: ErrorCode | None = None) -> None:
        """Give the job up at once (retry, shutdown) so the next attempt need not wait (no-op if not ours). A
        cancel request stays on the record: the next attempt records the cancellation."""
        released_at = self._clock().isoformat()

        def body(c: Claim) -> bytes:
            release = Release(
                reason=reason,
                error_code=error_code.value if error_code else None,
                by=c.worker_id,
                message_id=c.message_id,
                attempt=c.attempt,
                at=released_at,
            )
            return Released(
                job_id=c.job_id,
                generation=c.generation,
                write_id=_write_id(),
                released=release,
                cancel=c.cancel,
                opened=c.opened,
            ).dump()

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
        for _ in range(OPTIMISTIC_WRITE_TRIES):
            record, etag = self.read(job_id)
            if not isinstance(record, Completed | Failed):
                return False
            delivery = record.delivery
            new_state = delivery.state
            if state is not None and (replace_delivered or delivery.state != DeliveryState.DELIVERED):
                new_state = state
            logged = Delivery(
                state=new_state, attempts=[*delivery.attempts, entry][-DELIVERY_LOG_SIZE:], count=delivery.count + 1
            )
            updated: Finished = record.model_copy(update={"delivery": logged})
            if self._put(job_id, updated.dump(), IfMatch=etag).etag is not None:
                return True
        raise StorageError(f"record of {job_id} kept changing while recording a delivery")

    # --- helpers -------------------------------------------------------------------------------------------
    def _inprogress(self, claim: Claim) -> bytes:
        return InProgress(
            job_id=claim.job_id,
            generation=claim.generation,
            worker_id=claim.worker_id,
            message_id=claim.message_id,
            attempt=claim.attempt,
            started_at=claim.started_at,
            expires_at=claim.expires_at,
            progress=claim.progress,
            write_id=_write_id(),
            cancel=claim.cancel,
            opened=claim.opened,
        ).dump()

    def _finished(self, claim: Claim, webhook_url: str | None) -> dict[str, Any]:
        """The fields every terminal record has."""
        return {
            "job_id": claim.job_id,
            "generation": claim.generation,
            "worker_id": claim.worker_id,
            "started_at": claim.started_at,
            "finished_at": self._clock().isoformat(),
            "webhook_url": webhook_url,
            "delivery": Delivery(state=DeliveryState.PENDING if webhook_url else None),
            "write_id": _write_id(),
        }

    def _rewrite(self, claim: Claim, body: Callable[[Claim], bytes], lost: str = "was taken over") -> Claim:
        """PUT `body(claim)` If-Match our ETag. When that fails because someone only added a cancel request to
        our record (same owner and generation), adopt the cancel and write again; otherwise raise `LeaseLost`."""
        put = self._put(claim.job_id, body(claim), IfMatch=claim.etag)
        if put.etag is not None:
            return replace(claim, etag=put.etag)
        record, current = put.current, put.current_etag
        ours = (
            isinstance(record, InProgress)
            and record.worker_id == claim.worker_id
            and record.generation == claim.generation
            and record.cancel is not None
        )
        if not ours:
            raise LeaseLost(f"claim on {claim.job_id} {lost}")
        assert record is not None
        cancelled = replace(claim, etag=current, cancel=record.cancel)
        put = self._put(claim.job_id, body(cancelled), IfMatch=current)
        if put.etag is None:
            raise LeaseLost(f"claim on {claim.job_id} {lost}")
        return replace(cancelled, etag=put.etag)

    def _note(self, job_id: str, status: JobStatus, error_code: str | None = None) -> None:
        if self.index is not None:
            self.index.note(job_id, status.value, self._clock(), error_code)

    def _put(self, job_id: str, body: bytes, **condition: str) -> _Put:
        """Conditional put. When the condition fails, the record is read: if it already holds exactly this body,
        an earlier try of this very put was stored and only its response was lost (the AWS_CALL policy retries
        a dropped connection), so the write succeeded; otherwise the current record comes back to the caller."""
        with storage_errors(f"writing record of {job_id}"):
            try:
                version = self.records.put(job_id, body, **condition)
            except ClientError as exc:
                if not (is_conflict(exc) or ("IfMatch" in condition and is_missing(exc))):
                    raise
                current, etag = self.read(job_id)
                if current is not None and current == parse_record(body):
                    return _Put(etag)
                return _Put(None, current, etag)
        return _Put(version)
