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

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.retry import queue_backoff_s
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
from consumer.storage.audio import OutputLocation, StoredAudio, output_location
from consumer.storage.job_record import StreamRef
from consumer.storage.stream_blocks import sequence_prefix
from consumer.worker.abort import Abort, AbortCause, AbortCheck
from consumer.worker.held_claim import HeldClaim
from consumer.worker.message import ReceivedMessage
from consumer.worker.outcome_events import cancel_message, completed_event, failed_event
from consumer.worker.services import Services
from consumer.worker.stream_out import StreamOut
from consumer.worker.synthesize import synthesize
from consumer.worker.validate import RequestBody
from consumer.worker.webhook import resolve_target
from contracts.events import ErrorCode, Event, SynthesisCompleted, SynthesisFailed
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


class JobRun:
    """One attempt at one message. `shutdown` aborts synthesis when set (the message is then returned)."""

    def __init__(self, message: ReceivedMessage, services: Services, shutdown: threading.Event) -> None:
        self.msg = message
        self.body = RequestBody(message.body)
        self.services = services
        self.settings = services.settings
        self.shutdown = shutdown
        self.job_id = self.body.job_id_or(message.message_id)
        self.deadline = message.received_monotonic + self.settings.job_timeout_s
        self.started = message.received_monotonic  # when the claim was taken (job time counts from there)
        self.held = HeldClaim(message, self.settings, services.queue, services.jobs, services.rtf)
        self.should_abort = AbortCheck(self.held, shutdown, lambda: self.deadline)
        self.generation = 1
        self.webhook_url: str | None = None  # where this job's outcome is delivered
        self._webhook_refused = False  # the request's webhook broke the address rules: never POST to it
        self.stream: StreamRef | None = None  # the block sequence this attempt streamed, once finished
        self._out: StreamOut | None = None
        self._fresh = False  # this attempt's claim was the job's first

    # --- the whole life, one branch per exit -------------------------------------------------------------
    def run(self) -> Outcome:
        structlog.contextvars.bind_contextvars(
            job_id=self.job_id, message_id=self.msg.message_id, attempt=self.msg.receive_count
        )
        started = time.monotonic()
        self.held.heartbeat.start()
        try:
            with self.services.admission.preparing():
                outcome = self._run()
        finally:
            self.held.heartbeat.stop()
            self.services.metrics.heartbeats.inc(self.held.heartbeat.extensions)
            structlog.contextvars.unbind_contextvars("job_id", "message_id", "attempt")
        if outcome in (Outcome.DONE, Outcome.FAILED, Outcome.REPLAYED) and self.body.wants_stream:
            # The outcome is recorded: the blocks go (ours by key when no attempt came before, else listed).
            only_attempt = self._out is not None and self._fresh
            self.services.streams.remove(self.job_id, self._out.keys() if only_attempt and self._out else None)
        self.services.metrics.jobs.labels(outcome.value).inc()
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
            job_id = self.body.job_id
            if job_id is None:
                self.body.request()  # names what is wrong with the job id (or the body)
                raise InvalidRequest("job_id cannot name a job")
            self._claim(job_id)
            # 2. Every request-level check before anything else is written.
            request = self.body.request()
            self.webhook_url = _webhook(request)
            location = output_location(
                request, self.settings.bucket, self.settings.output_prefix, self.settings.allowed_output_buckets
            )
            self._check_webhook(request)
            self.services.audio.check_bucket(location)  # before the device: a missing bucket is found now
            text = self.services.texts.resolve(request)
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
            self.held.record(
                lambda claim: self.services.jobs.complete(claim, event, self.webhook_url, self.stream),
                "the completion",
            )
        except (JobAlreadyCompleted, JobAlreadyFailed) as done:
            log.info("job_already_finished", event_id=done.event.event_id, consequence="recorded event replayed")
            self.webhook_url = None if done.delivered else done.webhook_url
            return self._announce(done.event, Outcome.REPLAYED, recorded=True)
        except PermanentError as exc:
            return self._fail_permanently(exc)
        except JobInProgressElsewhere as exc:
            log.info("job_in_progress_elsewhere", reason=str(exc), retry_in_s=exc.retry_in_s)
            self.held.settle()
            self.services.queue.release(
                self.msg.receipt_handle, min(exc.retry_in_s, self.settings.visibility_timeout_s)
            )
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
        self._outcome_metrics(event)
        return self._announce(event, Outcome.DONE, recorded=True)

    # --- the work -------------------------------------------------------------------------------------------
    def _claim(self, job_id: str) -> None:
        ttl = self.settings.visibility_timeout_s
        while True:
            # Fenced like every write: a delivery whose visibility ran out before the claim (the process was
            # paused after the receive) is no longer ours; claiming it could reopen a job that another worker,
            # or the dead-letter sweep, has finished since.
            self.held.lease.check("the claim")
            started = time.monotonic()
            try:
                claim = self.services.jobs.claim(
                    job_id, self.held.owner, ttl, self.msg.message_id, self.msg.receive_count
                )
                break
            except JobInProgressElsewhere as elsewhere:
                if not self._wait_out(elsewhere):
                    raise
        self.held.taken(claim, started, ttl)
        self.generation, self._fresh = claim.generation, claim.fresh
        self.started = time.monotonic()
        self.deadline = self.started + self.settings.job_timeout_s
        if claim.cancel:
            raise JobCancelled(cancel_message(claim.cancel, "before it started"))

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
            if self.shutdown.is_set() or self.held.heartbeat.lost.is_set() or self.held.lease.remaining_s() <= 0:
                return False
            self.shutdown.wait(min(left, 0.25))
        return not self.shutdown.is_set()

    def _allow_for(self, text: str) -> None:
        """A long text gets more time: `job_timeout_s` plus `job_timeout_per_1k_chars_s` per 1,000 characters."""
        extra = self.settings.job_timeout_per_1k_chars_s * len(text) / 1000
        self.deadline = self.started + self.settings.job_timeout_s + extra

    def _produce(self, request: SynthesisRequest, text: str, location: OutputLocation) -> SynthesisCompleted:
        """Synthesize and upload, unless an earlier attempt already uploaded the audio."""
        assert self.held.claim is not None
        stored = None if self.held.claim.fresh else self.services.audio.find(location)
        if stored is not None:
            log.info("audio_already_uploaded", uri=location.uri, consequence="no second synthesis")
        else:
            stored = self._synthesize_and_upload(request, text, location)
        return self._completed_event(request, text, stored)

    def _synthesize_and_upload(self, request: SynthesisRequest, text: str, location: OutputLocation) -> StoredAudio:
        with synthesize(
            request,
            text,
            self.services.voices,
            self.services.engine,
            self.should_abort,
            self.held.progress,
            longform_above_chars=self.settings.longform_above_chars,
            scratch_dir=self.settings.scratch_dir,
            device_span=self._on_device,
            stream_out=lambda: self._stream_out(request),
        ) as result:
            encoded, synthesis_s = result.encoded, result.synthesis_s
            self.services.rtf.observe(synthesis_s, encoded.duration_s)
            self.held.ensure_owned("the audio")
            stored = self.services.audio.put(  # write-once: a stale attempt's upload cannot replace it
                location,
                result.data,
                job_id=request.job_id,
                sample_rate=encoded.sample_rate,
                duration_s=encoded.duration_s,
                seed=result.seed,
                model_id=self.services.engine.model_id,
                synthesis_s=synthesis_s,
                voice_version=result.voice_version,
            )
            if self._out is not None:
                self.stream = StreamRef(prefix=self._out.prefix, blocks=self._out.seq, bytes=self._out.bytes)
        self.services.metrics.synthesis_seconds.observe(synthesis_s)
        if encoded.duration_s > 0:
            self.services.metrics.real_time_factor.observe(synthesis_s / encoded.duration_s)
        log.info(
            "audio_uploaded",
            uri=location.uri,
            duration_s=round(encoded.duration_s, 3),
            synthesis_s=round(synthesis_s, 3),
            bytes=stored.output.bytes,
        )
        return stored

    def _stream_out(self, request: SynthesisRequest) -> StreamOut:
        """The block writer of this attempt's sequence (`consumer.storage.stream_blocks`)."""
        claim = self.held.claim
        assert claim is not None
        prefix = sequence_prefix(self.job_id, claim.generation, claim.attempt, claim.message_id)
        log.info("stream_started", prefix=prefix)
        self._out = StreamOut(
            self.services.streams,
            prefix,
            request.output.format,
            self.services.engine.sample_rate,
            out_sample_rate=request.output.sample_rate,
            scratch_dir=self.settings.scratch_dir,
        )
        return self._out

    def _completed_event(self, request: SynthesisRequest, text: str, stored: StoredAudio) -> SynthesisCompleted:
        self.services.metrics.queue_wait_seconds.observe(self.msg.queue_wait_s)
        return completed_event(request, text, stored, self.msg, self.generation, self.settings.worker_id)

    @contextmanager
    def _on_device(self) -> Iterator[None]:
        """An engine call: device time for the metrics and for the poll loop's admission."""
        with self.services.admission.at_device(), self.services.metrics.device.busy():
            yield

    # --- outcomes: recorded first, then announced ------------------------------------------------------------
    def _announce(self, event: Event, outcome: Outcome, *, recorded: bool, then_release: bool = False) -> Outcome:
        """Publish a recorded outcome (SNS), hand its webhook to the senders, finish the message. If this fails
        the message is kept and its next delivery replays the recorded event; on the last receive the message
        is finished anyway (the record holds the outcome; a completed job is not sent to the DLQ). `recorded`:
        the outcome is in the job's record (queued delivery retries need it)."""
        try:
            self.services.notifier.publish(event)
            if self.webhook_url:
                self.services.deliveries.schedule(event, self.webhook_url, recorded=recorded)
        except (NotifyError, StorageError) as exc:
            if not self._last_receive():
                self.held.settle()
                delay = queue_backoff_s(self.msg.receive_count, self.settings)
                log.warning("event_not_published", error=str(exc), consequence=f"replayed in {delay}s")
                self.services.metrics.retries.labels(exc.code.value).inc()
                self.services.queue.release(self.msg.receipt_handle, delay)
                return Outcome.RETRY
            log.error("event_not_published", error=str(exc), consequence="recorded only (jobs show, jobs redeliver)")
            self.services.metrics.events_unpublished.inc()
        if then_release:
            self.held.settle()
            self.services.queue.release(self.msg.receipt_handle, 0)  # the next receive moves it to the DLQ
            return outcome
        return self._delete(outcome)

    def _fail_permanently(self, exc: WorkerError) -> Outcome:
        log.info("job_failed_permanently", error_code=exc.code.value, error=str(exc))
        self._adopt_webhook_hint()
        event = self._failed_event(exc.code, str(exc), retryable=False)
        recorded = self.held.claim is not None  # no claim: a body too broken to name a job has no record
        try:
            if recorded:
                self.held.record(lambda claim: self.services.jobs.fail(claim, event, self.webhook_url), "the failure")
        except LeaseLost as lost:
            return self._abandon(str(lost))
        except RetryableError as retry:
            return self._retry(retry)
        self._outcome_metrics(event)
        return self._announce(event, Outcome.FAILED, recorded=recorded)

    def _retry(self, exc: RetryableError) -> Outcome:
        self.held.settle()
        self.services.metrics.retries.labels(exc.code.value).inc()
        if self._last_receive():
            return self._retries_exhausted(exc)
        self.held.release("retry", exc.code)
        delay = exc.delay_s if exc.delay_s is not None else queue_backoff_s(self.msg.receive_count, self.settings)
        log.info("job_retry_scheduled", error_code=exc.code.value, error=str(exc), delay_s=delay)
        self.services.queue.release(self.msg.receipt_handle, delay)
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
        if self.held.claim is not None:
            try:
                self.services.jobs.fail(self.held.claim, event, self.webhook_url, redrivable=True)
                self.held.claim, recorded = None, True
            except LeaseLost as lost:
                return self._abandon(str(lost))
            except StorageError as storage:
                log.warning("failure_not_recorded", error=str(storage), consequence="announced unrecorded")
        self._outcome_metrics(event)
        return self._announce(event, Outcome.RETRY, recorded=recorded, then_release=True)

    # --- other exits -----------------------------------------------------------------------------------------
    def _aborted(self) -> Outcome:
        """Synthesis stopped because `should_abort` said so: act on the cause it saw first. (Re-checking now
        would be wrong: a process paused past its lease resumes with its heartbeat running, which may extend
        the lease again between the abort and this exit.)"""
        self.held.settle()
        cause = self.should_abort.cause or self.should_abort.reason()
        if cause is AbortCause.CANCELLED:
            assert self.held.claim is not None and self.held.claim.cancel is not None
            return self._fail_permanently(JobCancelled(cancel_message(self.held.claim.cancel, "while synthesizing")))
        if cause is AbortCause.LOST:
            return self._abandon(self.held.heartbeat.lost_reason)
        if cause is AbortCause.LEASE:
            return self._abandon("the lease ran out during synthesis (the process was paused, or could not renew)")
        if cause is AbortCause.SHUTDOWN:
            self.held.release("shutdown", None)
            hidden_s = self.shutdown.hidden_s if isinstance(self.shutdown, Abort) else 0
            self.services.queue.release(self.msg.receipt_handle, hidden_s)
            log.info("job_returned", reason="shutdown", hidden_s=hidden_s, consequence="visible for another worker")
            return Outcome.RETURNED
        if cause is AbortCause.DEADLINE:
            limit = self.deadline - self.started
            return self._retry(JobTimeout(f"job exceeded its {limit:.0f}s limit"))
        return self._retry(RetryableError("synthesis aborted with no cause recorded", code=ErrorCode.INTERNAL))

    def _abandon(self, reason: str) -> Outcome:
        self.held.settle()
        log.warning("job_abandoned", reason=reason, consequence="another worker finishes it")
        return Outcome.ABANDONED

    def _delete(self, outcome: Outcome) -> Outcome:
        """Delete the finished message. Its outcome is recorded: if the delete fails, the message comes back and
        that delivery replays the outcome (never another one)."""
        self.held.settle()
        try:
            self.services.queue.delete_soon(self.msg.receipt_handle)
        except (StorageError, ClientError, BotoCoreError) as exc:
            log.warning("delete_failed", error=str(exc), consequence="redelivered: replays the recorded outcome")
        return outcome

    # --- helpers -------------------------------------------------------------------------------------------
    def _outcome_metrics(self, event: Event) -> None:
        """The job's outcome is decided (and recorded where it has a record): enqueue-to-outcome latency, and a
        failure by its code. A replay counts nothing: its attempt counted already."""
        code = event.error_code.value if isinstance(event, SynthesisFailed) else None
        self.services.metrics.outcome_recorded(self.msg.sent_at.timestamp(), code)

    def _last_receive(self) -> bool:
        """This delivery is the generation's last: the queue dead-letters it on its next receive. Counted within
        the generation, from the delivery that reopened it: a queue may keep a redriven message's receive
        count (LocalStack does), and one redrive must still get the full retry budget."""
        if self.services.max_receive_count is None:
            return False
        return self.held.attempt_in_generation() >= self.services.max_receive_count

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
            self.webhook_url = self.body.webhook_hint

    def _failed_event(self, code: ErrorCode, message: str, *, retryable: bool) -> SynthesisFailed:
        return failed_event(
            self.job_id,
            self.msg,
            self.generation,
            self.settings.worker_id,
            code,
            message,
            retryable=retryable,
            metadata=self.body.metadata,
        )


def _webhook(request: SynthesisRequest) -> str | None:
    return None if request.notify.webhook_url is None else str(request.notify.webhook_url)


def process_message(message: ReceivedMessage, services: Services, shutdown: threading.Event) -> Outcome:
    return JobRun(message, services, shutdown).run()
