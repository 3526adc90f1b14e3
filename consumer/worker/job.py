"""The life of one message, top to bottom. Every exit maps to exactly one queue action:

done          → result recorded, event published, message deleted
replayed      → job already finished (redelivery): same event republished, message deleted
failed        → permanent error: failure event published, message deleted
retry         → retryable error: message kept, visible again after a backoff (redrive → DLQ)
deferred      → another worker holds a live claim: message hidden until that claim expires
returned      → shutdown: message visible again at once for another worker
abandoned     → our visibility/claim was lost: nothing more is written; the new owner finishes
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import is_receipt_gone
from consumer.aws.queue import Queue
from consumer.core.errors import (
    InvalidRequest,
    JobAlreadyCompleted,
    JobInProgressElsewhere,
    JobTimeout,
    LeaseLost,
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
from consumer.storage.jobs import Claim, JobStore
from consumer.worker.heartbeat import Heartbeat
from consumer.worker.message import ReceivedMessage
from consumer.worker.notify import Notifier
from consumer.worker.synthesize import synthesize
from consumer.worker.validate import job_id_hint, validate
from consumer.worker.voices import VoiceResolver
from consumer.worker.webhook import resolve_target
from contracts.events import ErrorCode, SynthesisCompleted, SynthesisFailed, Timings, event_id_for
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
    metrics: Metrics
    max_receive_count: int | None = None


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
        # The claim is shared with the heartbeat thread, which renews it: every read-modify-write of it (renew,
        # complete) holds this lock, so the main thread never writes with an ETag the heartbeat has replaced.
        self._claim_lock = threading.Lock()
        self.claim: Claim | None = None
        # The claim owner is this attempt, not the process: a duplicate delivered to the same worker while
        # the job runs must be deferred like any other, not take the claim over.
        self.owner = f"{self.settings.worker_id}/{uuid.uuid4().hex[:8]}"
        self.heartbeat = Heartbeat(
            self._extend,
            interval_s=self.settings.heartbeat_interval_s,
            visibility_s=self.settings.visibility_timeout_s,
            received_at=message.received_monotonic,
            is_definitive=_extension_is_definitive,
        )

    # --- the whole life, one branch per exit -------------------------------------------------------------
    def run(self) -> Outcome:
        structlog.contextvars.bind_contextvars(
            job_id=self.job_id, message_id=self.msg.message_id, attempt=self.msg.receive_count
        )
        started = time.monotonic()
        self.heartbeat.start()
        try:
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
        request: SynthesisRequest | None = None
        try:
            request = validate(self.msg.body)
            location = output_location(  # every request-level check happens before anything is written
                request, self.settings.bucket, self.settings.output_prefix, self.settings.allowed_output_buckets
            )
            self._check_webhook(request)
            try:
                self.claim = self.s.jobs.claim(
                    request.job_id, self.owner, self.settings.visibility_timeout_s, self.msg.message_id
                )
            except JobAlreadyCompleted as done:
                log.info("job_already_completed", event_id=done.event.event_id, consequence="event replayed")
                self.s.notifier.publish(done.event, _webhook(request))
                return self._delete(Outcome.REPLAYED)
            event = self._produce(request, location, self.claim)
            self._complete(event)
            self.s.notifier.publish(event, _webhook(request))
            return self._delete(Outcome.DONE)
        except PermanentError as exc:
            return self._fail_permanently(exc, request)
        except JobInProgressElsewhere as exc:
            log.info("job_in_progress_elsewhere", reason=str(exc), retry_in_s=exc.retry_in_s)
            self._settle()
            self.s.queue.release(self.msg.receipt_handle, min(exc.retry_in_s, self.settings.visibility_timeout_s))
            return Outcome.DEFERRED
        except LeaseLost as exc:
            self._settle()
            log.warning("job_abandoned", reason=str(exc), consequence="another worker finishes it")
            return Outcome.ABANDONED
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

    # --- the work -------------------------------------------------------------------------------------------
    def _produce(self, request: SynthesisRequest, location: OutputLocation, claim: Claim) -> SynthesisCompleted:
        """Synthesize and upload, unless an earlier attempt already uploaded the audio."""
        stored = None if claim.fresh else self.s.audio.find(location)
        if stored is not None:
            log.info("audio_already_uploaded", uri=location.uri, consequence="no second synthesis")
        else:
            stored = self._synthesize_and_upload(request, location)
        return self._completed_event(request, stored)

    def _synthesize_and_upload(self, request: SynthesisRequest, location: OutputLocation) -> StoredAudio:
        result = synthesize(request, self.s.voices, self.s.engine, self._should_abort)
        encoded, synthesis_s = result.encoded, result.synthesis_s
        self._ensure_owned()
        stored = self.s.audio.put(
            location,
            encoded.data,
            job_id=request.job_id,
            sample_rate=encoded.sample_rate,
            duration_s=encoded.duration_s,
            seed=result.seed,
            model_id=self.s.engine.model_id,
            synthesis_s=synthesis_s,
        )
        self.s.metrics.synthesis_seconds.observe(synthesis_s)
        if encoded.duration_s > 0:
            self.s.metrics.real_time_factor.observe(synthesis_s / encoded.duration_s)
        log.info(
            "audio_uploaded",
            uri=location.uri,
            duration_s=round(encoded.duration_s, 3),
            synthesis_s=round(synthesis_s, 3),
            bytes=len(encoded.data),
        )
        return stored

    def _completed_event(self, request: SynthesisRequest, stored: StoredAudio) -> SynthesisCompleted:
        total_s = time.monotonic() - self.msg.received_monotonic
        duration = stored.output.duration_s
        self.s.metrics.queue_wait_seconds.observe(self.msg.queue_wait_s)
        return SynthesisCompleted(
            event_id=event_id_for(request.job_id, "completed"),
            job_id=request.job_id,
            attempt=self.msg.receive_count,
            worker_id=self.settings.worker_id,
            occurred_at=datetime.now(UTC),
            metadata=request.metadata,
            output=stored.output,
            timings=Timings(
                queue_wait_s=self.msg.queue_wait_s,
                synthesis_s=stored.synthesis_s,
                total_s=total_s,
                real_time_factor=stored.synthesis_s / duration if duration > 0 else 0.0,
            ),
            model_id=stored.model_id,
            seed=stored.seed,
            text_chars=len(request.text),
        )

    # --- exits ---------------------------------------------------------------------------------------------
    def _fail_permanently(self, exc: WorkerError, request: SynthesisRequest | None) -> Outcome:
        log.info("job_failed_permanently", error_code=exc.code.value, error=str(exc))
        event = self._failed_event(exc.code, str(exc), retryable=False, request=request)
        try:
            self.s.notifier.publish(event, _webhook(request) if request else None)
        except RetryableError as notify_exc:
            return self._retry(notify_exc)  # the failure must be announced: keep the message
        self._settle()
        self._release_claim()
        return self._delete(Outcome.FAILED)

    def _retry(self, exc: RetryableError) -> Outcome:
        self._settle()
        self._release_claim()
        self.s.metrics.retries.labels(exc.code.value).inc()
        attempt = self.msg.receive_count
        last = self.s.max_receive_count is not None and attempt >= self.s.max_receive_count
        delay = exc.delay_s if exc.delay_s is not None else retry_delay_s(attempt, self.settings)
        if last:
            log.error(
                "job_retries_exhausted",
                error_code=exc.code.value,
                error=str(exc),
                consequence="moved to the dead-letter queue on its next receive",
            )
            event = self._failed_event(
                ErrorCode.RETRIES_EXHAUSTED,
                f"gave up after {attempt} attempts; last error ({exc.code.value}): {exc}",
                retryable=False,
            )
            try:
                self.s.notifier.publish(event, None)
            except RetryableError:
                log.warning("failure_event_not_published", event_id=event.event_id)
            delay = 0
        else:
            log.info("job_retry_scheduled", error_code=exc.code.value, error=str(exc), delay_s=delay)
        self.s.queue.release(self.msg.receipt_handle, delay)
        return Outcome.RETRY

    def _aborted(self) -> Outcome:
        self._settle()
        if self.heartbeat.lost.is_set():
            log.warning("job_abandoned", reason=self.heartbeat.lost_reason)
            return Outcome.ABANDONED
        if self.shutdown.is_set():
            self._release_claim()
            self.s.queue.release(self.msg.receipt_handle, 0)
            log.info("job_returned", reason="shutdown", consequence="visible again for another worker")
            return Outcome.RETURNED
        return self._retry(JobTimeout(f"job exceeded its {self.settings.job_timeout_s:.0f}s limit"))

    def _delete(self, outcome: Outcome) -> Outcome:
        self._settle()
        self.s.queue.delete(self.msg.receipt_handle)
        return outcome

    def _settle(self) -> None:
        """The first step of every exit, before its queue or record write: stop the heartbeat and wait for a
        beat in flight, so no extension or renewal can land after the message is released or deleted."""
        self.heartbeat.stop()

    def _complete(self, event: SynthesisCompleted) -> None:
        """Record the completion with the current claim; the heartbeat cannot renew it meanwhile."""
        with self._claim_lock:
            self._ensure_owned()
            assert self.claim is not None
            self.s.jobs.complete(self.claim, event)
            self.claim = None  # completed: nothing left to renew or release

    # --- helpers -------------------------------------------------------------------------------------------
    def _should_abort(self) -> bool:
        return self.shutdown.is_set() or self.heartbeat.lost.is_set() or time.monotonic() > self.deadline

    def _ensure_owned(self) -> None:
        if self.heartbeat.lost.is_set():
            raise LeaseLost(self.heartbeat.lost_reason)

    def _extend(self, seconds: int) -> None:
        self.s.queue.change_visibility(self.msg.receipt_handle, seconds)
        with self._claim_lock:
            if self.claim is not None:
                self.claim = self.s.jobs.renew(self.claim, seconds)

    def _release_claim(self) -> None:
        """Expire our claim at once (called after `_settle`: no renewal can race it)."""
        if self.claim is None:
            return
        try:
            self.s.jobs.release(self.claim)
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
            raise InvalidRequest(f"notify.webhook_url refused: {exc}") from exc
        except WebhookFailed:
            pass  # unresolvable now; delivery retries later

    def _failed_event(
        self, code: ErrorCode, message: str, *, retryable: bool, request: SynthesisRequest | None = None
    ) -> SynthesisFailed:
        return SynthesisFailed(
            event_id=event_id_for(self.job_id, f"failed:{code.value}"),
            job_id=self.job_id,
            attempt=self.msg.receive_count,
            worker_id=self.settings.worker_id,
            occurred_at=datetime.now(UTC),
            metadata=request.metadata if request else {},
            error_code=code,
            error_message=message[:2000],
            retryable=retryable,
        )


def _extension_is_definitive(exc: BaseException) -> bool:
    """A heartbeat failure that retrying cannot fix: the claim was taken over or the receipt is gone."""
    return isinstance(exc, LeaseLost) or is_receipt_gone(exc)


def _webhook(request: SynthesisRequest | None) -> str | None:
    if request is None or request.notify.webhook_url is None:
        return None
    return str(request.notify.webhook_url)


def process_message(message: ReceivedMessage, services: Services, shutdown: threading.Event) -> Outcome:
    return JobRun(message, services, shutdown).run()
