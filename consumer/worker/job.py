"""The life of one message, top to bottom. Every exit maps to exactly one queue action:

done          → completion recorded (final), event published, webhook handed to the senders, message deleted
replayed      → the job already has an outcome for this message: the recorded event again, message deleted
failed        → permanent error: failure recorded, event published, message deleted
retry         → retryable error: record released, message visible again after a backoff; on the last receive
                the failure is recorded and published, and the message goes on to the DLQ
deferred      → another attempt holds a live claim: message hidden until that claim expires (a claim that runs
                out within a heartbeat, or any claim on the last receive, is waited out instead)
returned      → shutdown: record released, message visible again for another worker (at once, or once this
                worker's own open long poll has ended)
abandoned     → our lease ran out or was taken over: nothing more is written; the new owner finishes

An event is only ever published by the attempt that wrote the job's outcome into its record, or as a replay of
the recorded event: so one job (and generation) has one outcome, and no event contradicts the record.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import is_receipt_gone
from consumer.aws.queue import Queue
from consumer.core.errors import (
    InvalidRequest,
    JobAlreadyCompleted,
    JobAlreadyFailed,
    JobCancelled,
    JobInProgressElsewhere,
    JobTimeout,
    LeaseLost,
    NotifyError,
    PermanentError,
    RetryableError,
    StorageError,
    SynthesisAborted,
    WebhookFailed,
    WebhookRefused,
    WorkerError,
)
from consumer.core.logs import get_logger
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings
from consumer.engine import Engine
from consumer.storage.audio import AudioStore, OutputLocation, StoredAudio, output_location
from consumer.storage.job_record import CancelRequest
from consumer.storage.jobs import Claim, JobStore
from consumer.storage.workers import WorkerRegistry
from consumer.worker.admission import Admission
from consumer.worker.delivery import Deliveries
from consumer.worker.heartbeat import Heartbeat
from consumer.worker.lease import Lease
from consumer.worker.message import ReceivedMessage
from consumer.worker.notify import Notifier
from consumer.worker.progress import Progress, RealTimeFactor
from consumer.worker.synthesize import synthesize
from consumer.worker.texts import TextResolver
from consumer.worker.validate import job_id_hint, usable_job_id, validate, webhook_hint
from consumer.worker.voices import VoiceResolver
from consumer.worker.webhook import resolve_target
from contracts.events import ErrorCode, Event, SynthesisCompleted, SynthesisFailed, Timings, event_id_for
from contracts.requests import SynthesisRequest

log = get_logger(__name__)


class Outcome(StrEnum):
    DONE = "done"
    REPLAYED = "replayed"
    FAILED = "failed"
    RETRY = "retry"
    DEFERRED = "deferred"
    RETURNED = "returned"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Services:
    """Everything a job needs, built once per process."""

    settings: Settings
    queue: Queue
    jobs: JobStore
    audio: AudioStore
    voices: VoiceResolver
    engine: Engine
    notifier: Notifier
    deliveries: Deliveries
    metrics: Metrics
    texts: TextResolver
    max_receive_count: int | None = None
    rtf: RealTimeFactor = field(default_factory=RealTimeFactor)  # this worker's measured speed, for ETAs
    workers: WorkerRegistry | None = None  # this worker's liveness record (`f5-worker status`)
    admission: Admission = field(default_factory=lambda: Admission(1))  # jobs' phases, for the poll loop


class AbortCause(StrEnum):
    """Why synthesis was stopped: latched when the abort check first says yes."""

    CANCELLED = "cancelled"
    LOST = "lost"  # the heartbeat lost the job (takeover, receipt gone)
    LEASE = "lease"  # the lease ran out (a pause, extensions failing)
    SHUTDOWN = "shutdown"
    DEADLINE = "deadline"  # job_timeout_s


class Abort(threading.Event):
    """Set when in-flight jobs must stop and hand their messages back (shutdown). `hidden_s`: how long a
    returned message stays hidden: until this worker's own open long poll has ended, so that poll cannot
    receive the message it was just given back (that would cost the job a receive)."""

    hidden_s: int = 0


def retry_delay_s(attempt: int, settings: Settings) -> int:
    """Exponential backoff from the receive count, with jitter, clamped."""
    ceiling = min(settings.retry_max_delay_s, settings.retry_base_delay_s * 2 ** max(0, attempt - 1))
    return int(random.uniform(ceiling / 2, ceiling))


class JobRun:
    """One attempt at one message. `shutdown` aborts synthesis when set (the message is then returned)."""

    def __init__(self, message: ReceivedMessage, services: Services, shutdown: threading.Event) -> None:
        self.msg = message
        self.s = services
        self.settings = services.settings
        self.shutdown = shutdown
        self.job_id = job_id_hint(message.body, message.message_id)
        self.deadline = message.received_monotonic + self.settings.job_timeout_s
        self.started = message.received_monotonic  # when the claim was taken (job time counts from there)
        self._abort_cause: AbortCause | None = None  # the first reason `_should_abort` said yes, latched
        self._opened: Claim | None = None  # our claim as taken (it says how this generation was opened)
        # Owned from the receive on: the message is invisible for visibility_timeout_s (the lease's first term).
        self.lease = Lease(message.received_monotonic + self.settings.visibility_timeout_s)
        # The claim is shared with the heartbeat thread, which renews it: every read-modify-write of it (renew,
        # complete, fail) holds this lock, so the main thread never writes with an ETag the heartbeat replaced.
        self._claim_lock = threading.Lock()
        self.claim: Claim | None = None
        self.generation = 1
        self.webhook_url: str | None = None  # where this job's outcome is delivered
        self._webhook_refused = False  # the request's webhook broke the address rules: never POST to it
        self.progress = Progress(services.rtf)
        self.cancelled = threading.Event()  # someone asked to cancel the job (seen on a claim write)
        # The claim owner is this attempt, not the process: a duplicate delivered to the same worker while
        # the job runs must be deferred like any other, not take the claim over.
        self.owner = f"{self.settings.worker_id}/{uuid.uuid4().hex[:8]}"
        self.heartbeat = Heartbeat(
            self._extend,
            interval_s=self.settings.heartbeat_interval_s,
            visibility_s=self.settings.visibility_timeout_s,
            received_at=message.received_monotonic,
            is_definitive=_extension_is_definitive,
            tick=self._write_progress,
            tick_s=self.settings.progress_interval_s,
        )

    # --- the whole life, one branch per exit -------------------------------------------------------------
    def run(self) -> Outcome:
        structlog.contextvars.bind_contextvars(
            job_id=self.job_id, message_id=self.msg.message_id, attempt=self.msg.receive_count
        )
        started = time.monotonic()
        self.heartbeat.start()
        try:
            with self.s.admission.preparing():
                outcome = self._run()
        finally:
            self.heartbeat.stop()
            self.s.metrics.heartbeats.inc(self.heartbeat.extensions)
            structlog.contextvars.unbind_contextvars("job_id", "message_id", "attempt")
        self.s.metrics.jobs.labels(outcome.value).inc()
        log.info(
            "job_finished",
            job_id=self.job_id,
            outcome=outcome.value,
            elapsed_s=round(time.monotonic() - started, 3),
        )
        return outcome

    def _run(self) -> Outcome:
        try:
            # 1. The record first, whatever this worker's settings: a finished job only ever replays its outcome.
            job_id = usable_job_id(self.msg.body)
            if job_id is None:
                validate(self.msg.body)  # names what is wrong with the job id (or the body)
                raise InvalidRequest("job_id cannot name a job")
            self._claim(job_id)
            # 2. Every request-level check before anything else is written.
            request = validate(self.msg.body)
            self.webhook_url = _webhook(request)
            location = output_location(
                request, self.settings.bucket, self.settings.output_prefix, self.settings.allowed_output_buckets
            )
            self._check_webhook(request)
            self.s.audio.check_bucket(location)  # before the device: a missing bucket is found now
            text = self.s.texts.resolve(request)
            self._allow_for(text)
            log.info(
                "job_started",
                generation=self.generation,
                text_chars=len(text),
                voice=request.voice.voice_id or "clip",
                output=location.uri,
            )
            # 3. The work, then the outcome: recorded first, announced after (outside this `try`: once an
            # outcome is recorded, no later error may produce another one).
            event = self._produce(request, text, location)
            self._record(lambda claim: self.s.jobs.complete(claim, event, self.webhook_url), "the completion")
        except (JobAlreadyCompleted, JobAlreadyFailed) as done:
            log.info("job_already_finished", event_id=done.event.event_id, consequence="recorded event replayed")
            self.webhook_url = None if done.delivered else done.webhook_url
            return self._announce(done.event, Outcome.REPLAYED, recorded=True)
        except PermanentError as exc:
            return self._fail_permanently(exc)
        except JobInProgressElsewhere as exc:
            log.info("job_in_progress_elsewhere", reason=str(exc), retry_in_s=exc.retry_in_s)
            self._settle()
            self.s.queue.release(self.msg.receipt_handle, min(exc.retry_in_s, self.settings.visibility_timeout_s))
            return Outcome.DEFERRED
        except LeaseLost as exc:
            return self._abandon(str(exc))
        except SynthesisAborted:
            return self._aborted()
        except RetryableError as exc:
            return self._retry(exc)
        except (ClientError, BotoCoreError) as exc:
            wrapped = StorageError(f"AWS call failed: {exc}")
            wrapped.__cause__ = exc  # what `raise ... from exc` records
            return self._retry(wrapped)
        except Exception as exc:
            log.exception("job_crashed")
            return self._retry(RetryableError(f"unexpected {type(exc).__name__}: {exc}", code=ErrorCode.INTERNAL))
        return self._announce(event, Outcome.DONE, recorded=True)

    # --- the work -------------------------------------------------------------------------------------------
    def _claim(self, job_id: str) -> None:
        ttl = self.settings.visibility_timeout_s
        while True:
            # Fenced like every write: a delivery whose visibility ran out before the claim (the process was
            # paused after the receive) is no longer ours; claiming it could reopen a job that another worker,
            # or the dead-letter sweep, has finished since.
            self.lease.check("the claim")
            started = time.monotonic()
            try:
                claim = self.s.jobs.claim(job_id, self.owner, ttl, self.msg.message_id, self.msg.receive_count)
                break
            except JobInProgressElsewhere as held:
                if not self._wait_out(held):
                    raise
        with self._claim_lock:
            self.claim = claim
        self.lease.claimed(started, ttl)
        self.generation = claim.generation
        self._opened = claim
        self.started = time.monotonic()
        self.deadline = self.started + self.settings.job_timeout_s
        if claim.cancel:
            raise JobCancelled(_cancel_message(claim.cancel, "before it started"))

    def _wait_out(self, held: JobInProgressElsewhere) -> bool:
        """Wait for another attempt's claim to end, keeping our message hidden, rather than defer: a deferral
        costs a receive. Always on the last receive (deferring it would send the job to the DLQ with no
        outcome); otherwise only when that claim runs out within a heartbeat (its holder has stopped renewing:
        paused or dead). Returns False when we should defer after all (shutdown, our own lease in doubt)."""
        last = self._last_receive()
        if not last and held.retry_in_s > self.settings.heartbeat_interval_s:
            return False
        log.info("job_claim_waited_out", reason=str(held), wait_s=held.retry_in_s, last_receive=last)
        wake = time.monotonic() + held.retry_in_s
        while (left := wake - time.monotonic()) > 0:
            if self.shutdown.is_set() or self.heartbeat.lost.is_set() or self.lease.remaining_s() <= 0:
                return False
            self.shutdown.wait(min(left, 0.25))
        return not self.shutdown.is_set()

    def _allow_for(self, text: str) -> None:
        """A long text gets more time: `job_timeout_s` plus `job_timeout_per_1k_chars_s` per 1,000 characters."""
        extra = self.settings.job_timeout_per_1k_chars_s * len(text) / 1000
        self.deadline = self.started + self.settings.job_timeout_s + extra

    def _produce(self, request: SynthesisRequest, text: str, location: OutputLocation) -> SynthesisCompleted:
        """Synthesize and upload, unless an earlier attempt already uploaded the audio."""
        assert self.claim is not None
        stored = None if self.claim.fresh else self.s.audio.find(location)
        if stored is not None:
            log.info("audio_already_uploaded", uri=location.uri, consequence="no second synthesis")
        else:
            stored = self._synthesize_and_upload(request, text, location)
        return self._completed_event(request, text, stored)

    def _synthesize_and_upload(self, request: SynthesisRequest, text: str, location: OutputLocation) -> StoredAudio:
        with synthesize(
            request,
            text,
            self.s.voices,
            self.s.engine,
            self._should_abort,
            self.progress,
            longform_above_chars=self.settings.longform_above_chars,
            scratch_dir=self.settings.scratch_dir,
            device_span=self._on_device,
        ) as result:
            encoded, synthesis_s = result.encoded, result.synthesis_s
            self.s.rtf.observe(synthesis_s, encoded.duration_s)
            self._ensure_owned("the audio")
            stored = self.s.audio.put(  # write-once: a stale attempt's upload cannot replace it
                location,
                result.data,
                job_id=request.job_id,
                sample_rate=encoded.sample_rate,
                duration_s=encoded.duration_s,
                seed=result.seed,
                model_id=self.s.engine.model_id,
                synthesis_s=synthesis_s,
                voice_version=result.voice_version,
            )
        self.s.metrics.synthesis_seconds.observe(synthesis_s)
        if encoded.duration_s > 0:
            self.s.metrics.real_time_factor.observe(synthesis_s / encoded.duration_s)
        log.info(
            "audio_uploaded",
            uri=location.uri,
            duration_s=round(encoded.duration_s, 3),
            synthesis_s=round(synthesis_s, 3),
            bytes=stored.output.bytes,
        )
        return stored

    def _completed_event(self, request: SynthesisRequest, text: str, stored: StoredAudio) -> SynthesisCompleted:
        total_s = time.monotonic() - self.msg.received_monotonic
        duration = stored.output.duration_s
        self.s.metrics.queue_wait_seconds.observe(self.msg.queue_wait_s)
        return SynthesisCompleted(
            event_id=event_id_for(request.job_id, "completed"),
            job_id=request.job_id,
            attempt=self.msg.receive_count,
            generation=self.generation,
            worker_id=self.settings.worker_id,
            occurred_at=datetime.now(UTC),
            metadata=request.metadata,
            output=stored.output,  # what the store holds (the first stored version, if another attempt won)
            timings=Timings(
                queue_wait_s=self.msg.queue_wait_s,
                synthesis_s=stored.synthesis_s,
                total_s=total_s,
                real_time_factor=stored.synthesis_s / duration if duration > 0 else 0.0,
            ),
            model_id=stored.model_id,
            voice_version=stored.voice_version or None,
            seed=stored.seed,
            text_chars=len(text),
        )

    @contextmanager
    def _on_device(self) -> Iterator[None]:
        """An engine call: device time for the metrics and for the poll loop's admission."""
        with self.s.admission.at_device(), self.s.metrics.device.busy():
            yield

    # --- outcomes: recorded first, then announced ------------------------------------------------------------
    def _record(self, write: Callable[[Claim], None], what: str) -> None:
        """Write the job's outcome with our claim, if the lease still allows it; the claim is spent after."""
        with self._claim_lock:
            self._ensure_owned(what)
            assert self.claim is not None
            write(self.claim)
            self.claim = None  # final: nothing left to renew or release

    def _announce(self, event: Event, outcome: Outcome, *, recorded: bool, then_release: bool = False) -> Outcome:
        """Publish a recorded outcome (SNS), hand its webhook to the senders, finish the message. If this fails
        the message is kept and its next delivery replays the recorded event; on the last receive the message
        is finished anyway (the record holds the outcome; a completed job is not sent to the DLQ). `recorded`:
        the outcome is in the job's record (queued delivery retries need it)."""
        try:
            self.s.notifier.publish(event)
            if self.webhook_url:
                self.s.deliveries.schedule(event, self.webhook_url, recorded=recorded)
        except (NotifyError, StorageError) as exc:
            if not self._last_receive():
                self._settle()
                delay = retry_delay_s(self.msg.receive_count, self.settings)
                log.warning("event_not_published", error=str(exc), consequence=f"replayed in {delay}s")
                self.s.metrics.retries.labels(exc.code.value).inc()
                self.s.queue.release(self.msg.receipt_handle, delay)
                return Outcome.RETRY
            log.error("event_not_published", error=str(exc), consequence="recorded only (jobs show, jobs redeliver)")
            self.s.metrics.events_unpublished.inc()
        if then_release:
            self._settle()
            self.s.queue.release(self.msg.receipt_handle, 0)  # the next receive moves it to the DLQ
            return outcome
        return self._delete(outcome)

    def _fail_permanently(self, exc: WorkerError) -> Outcome:
        log.info("job_failed_permanently", error_code=exc.code.value, error=str(exc))
        self._adopt_webhook_hint()
        event = self._failed_event(exc.code, str(exc), retryable=False)
        recorded = self.claim is not None  # no claim: a body too broken to name a job has no record
        try:
            if recorded:
                self._record(lambda claim: self.s.jobs.fail(claim, event, self.webhook_url), "the failure")
        except LeaseLost as lost:
            return self._abandon(str(lost))
        except RetryableError as retry:
            return self._retry(retry)
        return self._announce(event, Outcome.FAILED, recorded=recorded)

    def _retry(self, exc: RetryableError) -> Outcome:
        self._settle()
        self.s.metrics.retries.labels(exc.code.value).inc()
        if self._last_receive():
            return self._retries_exhausted(exc)
        self._release_claim("retry", exc.code)
        delay = exc.delay_s if exc.delay_s is not None else retry_delay_s(self.msg.receive_count, self.settings)
        log.info("job_retry_scheduled", error_code=exc.code.value, error=str(exc), delay_s=delay)
        self.s.queue.release(self.msg.receipt_handle, delay)
        return Outcome.RETRY

    def _retries_exhausted(self, exc: RetryableError) -> Outcome:
        """The last receive: record and announce the failure; the message goes on to the DLQ, where only a
        redrive brings it back (and reopens the job as its next generation)."""
        attempt = self.msg.receive_count
        log.error(
            "job_retries_exhausted",
            error_code=exc.code.value,
            error=str(exc),
            consequence="failure recorded; moved to the dead-letter queue on its next receive",
        )
        self._adopt_webhook_hint()
        event = self._failed_event(
            ErrorCode.RETRIES_EXHAUSTED,
            f"gave up after {attempt} attempts; last error ({exc.code.value}): {exc}",
            retryable=False,
        )
        recorded = False
        if self.claim is not None:
            try:
                self.s.jobs.fail(self.claim, event, self.webhook_url, redrivable=True)
                self.claim, recorded = None, True
            except LeaseLost as lost:
                return self._abandon(str(lost))
            except StorageError as storage:
                log.warning("failure_not_recorded", error=str(storage), consequence="announced unrecorded")
        return self._announce(event, Outcome.RETRY, recorded=recorded, then_release=True)

    # --- other exits -----------------------------------------------------------------------------------------
    def _aborted(self) -> Outcome:
        """Synthesis stopped because `_should_abort` said so: act on the cause it saw first. (Re-checking now
        would be wrong: a process paused past its lease resumes with its heartbeat running, which may extend
        the lease again between the abort and this exit.)"""
        self._settle()
        cause = self._abort_cause or self._abort_reason()
        if cause is AbortCause.CANCELLED:
            assert self.claim is not None and self.claim.cancel is not None
            return self._fail_permanently(JobCancelled(_cancel_message(self.claim.cancel, "while synthesizing")))
        if cause is AbortCause.LOST:
            return self._abandon(self.heartbeat.lost_reason)
        if cause is AbortCause.LEASE:
            return self._abandon("the lease ran out during synthesis (the process was paused, or could not renew)")
        if cause is AbortCause.SHUTDOWN:
            self._release_claim("shutdown", None)
            hidden_s = self.shutdown.hidden_s if isinstance(self.shutdown, Abort) else 0
            self.s.queue.release(self.msg.receipt_handle, hidden_s)
            log.info("job_returned", reason="shutdown", hidden_s=hidden_s, consequence="visible for another worker")
            return Outcome.RETURNED
        if cause is AbortCause.DEADLINE:
            limit = self.deadline - self.started
            return self._retry(JobTimeout(f"job exceeded its {limit:.0f}s limit"))
        return self._retry(RetryableError("synthesis aborted with no cause recorded", code=ErrorCode.INTERNAL))

    def _abandon(self, reason: str) -> Outcome:
        self._settle()
        log.warning("job_abandoned", reason=reason, consequence="another worker finishes it")
        return Outcome.ABANDONED

    def _delete(self, outcome: Outcome) -> Outcome:
        """Delete the finished message. Its outcome is recorded: if the delete fails, the message comes back and
        that delivery replays the outcome (never another one)."""
        self._settle()
        try:
            self.s.queue.delete_soon(self.msg.receipt_handle)
        except (StorageError, ClientError, BotoCoreError) as exc:
            log.warning("delete_failed", error=str(exc), consequence="redelivered: replays the recorded outcome")
        return outcome

    def _settle(self) -> None:
        """The first step of every exit, before its queue or record write: stop the heartbeat and wait for a
        beat in flight, so no extension or renewal can land after the message is released or deleted."""
        self.heartbeat.stop()

    # --- helpers -------------------------------------------------------------------------------------------
    def _last_receive(self) -> bool:
        """This delivery is the generation's last: the queue dead-letters it on its next receive. Counted within
        the generation, from the delivery that reopened it: a queue may keep a redriven message's receive
        count (LocalStack does), and one redrive must still get the full retry budget."""
        if self.s.max_receive_count is None:
            return False
        attempt = self.msg.receive_count
        if self._opened is not None:
            attempt = self._opened.attempt_in_generation(self.msg.message_id, attempt)
        return attempt >= self.s.max_receive_count

    def _should_abort(self) -> bool:
        if self._abort_cause is None:
            self._abort_cause = self._abort_reason()
        return self._abort_cause is not None

    def _abort_reason(self) -> AbortCause | None:
        if self.cancelled.is_set() and not self.heartbeat.lost.is_set():
            return AbortCause.CANCELLED
        if self.heartbeat.lost.is_set():
            return AbortCause.LOST
        if self.lease.remaining_s() <= 0:
            return AbortCause.LEASE
        if self.shutdown.is_set():
            return AbortCause.SHUTDOWN
        if time.monotonic() > self.deadline:
            return AbortCause.DEADLINE
        return None

    def _ensure_owned(self, what: str) -> None:
        """Before every write: the heartbeat has not lost the job, and our own deadline leaves time to write."""
        if self.heartbeat.lost.is_set():
            raise LeaseLost(self.heartbeat.lost_reason)
        self.lease.check(what)

    def _extend(self, seconds: int) -> None:
        """A beat: the message's visibility (batched with the other messages in flight), then the claim. The
        renewal is one conditional write per job per beat, the only write a job without chunk progress makes
        while it runs: it is how the attempt hears of a cancel request or a takeover within one beat (renewing
        every other beat was measured to double that), so it is not thinned out."""
        started = time.monotonic()
        self.s.queue.extend_visibility(self.msg.receipt_handle, seconds)
        self.lease.extended(started, seconds)
        with self._claim_lock:
            if self.claim is not None:
                self.claim = self.s.jobs.renew(self.claim, seconds, self.progress.snapshot())
                self.lease.claimed(started, seconds)
                self._notice_cancel()

    def _write_progress(self) -> None:
        """Between beats (heartbeat thread): write the latest chunk boundary to the record if it changed. A
        failed write is skipped (the next beat carries the progress); another owner means the job is lost."""
        snapshot = self.progress.take()
        if snapshot is None:
            return
        with self._claim_lock:
            if self.claim is None:
                return
            try:
                self.claim = self.s.jobs.report_progress(self.claim, snapshot)
            except LeaseLost as exc:
                self.heartbeat.mark_lost(str(exc))
                return
            except (StorageError, ClientError, BotoCoreError) as exc:
                log.debug("progress_not_written", error=str(exc), consequence="the next beat carries it")
                return
            self._notice_cancel()

    def _notice_cancel(self) -> None:
        if self.claim is not None and self.claim.cancel and not self.cancelled.is_set():
            log.info("job_cancel_requested", by=self.claim.cancel.by, consequence="stops at the next step")
            self.cancelled.set()

    def _release_claim(self, reason: str, code: ErrorCode | None) -> None:
        """Mark the record RELEASED at once (called after `_settle`: no renewal can race it)."""
        if self.claim is None:
            return
        try:
            self.s.jobs.release(self.claim, reason, code)
        except (ClientError, BotoCoreError, StorageError) as exc:
            log.warning("claim_release_failed", error=str(exc), consequence="claim expires on its own")
        self.claim = None

    def _check_webhook(self, request: SynthesisRequest) -> None:
        url = _webhook(request)
        if url is None:
            return
        try:
            resolve_target(url, self.settings.webhook_allow_private)
        except WebhookRefused as exc:
            self.webhook_url, self._webhook_refused = None, True  # never POST to it, not even the failure
            raise InvalidRequest(f"notify.webhook_url refused: {exc}") from exc
        except WebhookFailed:
            pass  # unresolvable now; delivery retries later

    def _adopt_webhook_hint(self) -> None:
        """A request that failed before its webhook was read still reaches a webhook its body names."""
        if self.webhook_url is None and not self._webhook_refused:
            self.webhook_url = webhook_hint(self.msg.body)

    def _failed_event(self, code: ErrorCode, message: str, *, retryable: bool) -> SynthesisFailed:
        return failed_event(
            self.job_id,
            self.msg,
            self.generation,
            self.settings.worker_id,
            code,
            message,
            retryable=retryable,
        )


def failed_event(
    job_id: str,
    message: ReceivedMessage,
    generation: int,
    worker_id: str,
    code: ErrorCode,
    error: str,
    *,
    retryable: bool,
) -> SynthesisFailed:
    """The failure event of `job_id`'s `generation`, for the request in `message`."""
    return SynthesisFailed(
        event_id=event_id_for(job_id, f"failed:{generation}"),
        job_id=job_id,
        attempt=message.receive_count,
        generation=generation,
        worker_id=worker_id,
        occurred_at=datetime.now(UTC),
        metadata=_metadata(message.body),
        error_code=code,
        error_message=error[:2000],
        retryable=retryable,
    )


def _cancel_message(cancel: CancelRequest, when: str) -> str:
    reason = f": {cancel.reason}" if cancel.reason else ""
    return f"cancelled {when} by {cancel.by} at {cancel.at}{reason}"


def _extension_is_definitive(exc: BaseException) -> bool:
    """A heartbeat failure that retrying cannot fix: the claim was taken over or the receipt is gone."""
    return isinstance(exc, LeaseLost) or is_receipt_gone(exc)


def _webhook(request: SynthesisRequest) -> str | None:
    return None if request.notify.webhook_url is None else str(request.notify.webhook_url)


def _metadata(body: str) -> dict:
    """The request's metadata for a failure event, when the body has a valid one (it is echoed back)."""
    try:
        return validate(body).metadata
    except InvalidRequest:
        return {}


def process_message(message: ReceivedMessage, services: Services, shutdown: threading.Event) -> Outcome:
    return JobRun(message, services, shutdown).run()
