"""One attempt's hold on its job while it runs: the lease that fences every write, the claim on the job record,
and the heartbeat that keeps both (and brings news of a cancel request or a takeover).

The claim is shared with the heartbeat thread, which renews it: every read-modify-write of it (renew, progress,
complete, fail, release) holds one lock, so the job's thread never writes with an ETag the heartbeat replaced.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import is_receipt_gone
from consumer.aws.queue import Queue
from consumer.core.errors import LeaseLost, StorageError
from consumer.core.logs import get_logger
from consumer.core.settings import Settings
from consumer.storage.jobs import Claim, JobStore
from consumer.worker.heartbeat import Heartbeat
from consumer.worker.lease import Lease
from consumer.worker.message import ReceivedMessage
from consumer.worker.progress import Progress, RealTimeFactor
from contracts.codes import ErrorCode

log = get_logger(__name__)


class HeldClaim:
    """The lease, the claim and the heartbeat of one attempt at one message."""

    def __init__(
        self, message: ReceivedMessage, settings: Settings, queue: Queue, jobs: JobStore, rtf: RealTimeFactor
    ) -> None:
        self._message = message
        self._queue = queue
        self._jobs = jobs
        # Owned from the receive on: the message is invisible for visibility_timeout_s (the lease's first term).
        self.lease = Lease(message.received_monotonic + settings.visibility_timeout_s)
        self._lock = threading.Lock()
        self.claim: Claim | None = None
        self.opened: Claim | None = None  # the claim as taken (it says how this generation was opened)
        self.progress = Progress(rtf)
        self.cancelled = threading.Event()  # someone asked to cancel the job (seen on a claim write)
        # The claim owner is this attempt, not the process: a duplicate delivered to the same worker while
        # the job runs must be deferred like any other, not take the claim over.
        self.owner = f"{settings.worker_id}/{uuid.uuid4().hex[:8]}"
        self.heartbeat = Heartbeat(
            self._extend,
            interval_s=settings.heartbeat_interval_s,
            visibility_s=settings.visibility_timeout_s,
            received_at=message.received_monotonic,
            is_definitive=_extension_is_definitive,
            tick=self._write_progress,
            tick_s=settings.progress_interval_s,
        )

    def taken(self, claim: Claim, started: float, ttl_s: float) -> None:
        """The claim was taken at `started` for `ttl_s`: from now on the heartbeat renews it."""
        with self._lock:
            self.claim = claim
        self.lease.claimed(started, ttl_s)
        self.opened = claim

    def attempt_in_generation(self) -> int:
        """This delivery's attempt number within the job's generation (see `Claim.attempt_in_generation`)."""
        attempt = self._message.receive_count
        if self.opened is not None:
            attempt = self.opened.attempt_in_generation(self._message.message_id, attempt)
        return attempt

    def ensure_owned(self, what: str) -> None:
        """Before every write: the heartbeat has not lost the job, and our own deadline leaves time to write."""
        if self.heartbeat.lost.is_set():
            raise LeaseLost(self.heartbeat.lost_reason)
        self.lease.check(what)

    def record(self, write: Callable[[Claim], None], what: str) -> None:
        """Write the job's outcome with our claim, if the lease still allows it; the claim is spent after."""
        with self._lock:
            self.ensure_owned(what)
            assert self.claim is not None
            write(self.claim)
            self.claim = None  # final: nothing left to renew or release

    def settle(self) -> None:
        """The first step of every exit, before its queue or record write: stop the heartbeat and wait for a
        beat in flight, so no extension or renewal can land after the message is released or deleted."""
        self.heartbeat.stop()

    def release(self, reason: str, code: ErrorCode | None) -> None:
        """Mark the record RELEASED at once (called after `settle`: no renewal can race it)."""
        if self.claim is None:
            return
        try:
            self._jobs.release(self.claim, reason, code)
        except (ClientError, BotoCoreError, StorageError) as exc:
            log.warning("claim_release_failed", error=str(exc), consequence="claim expires on its own")
        self.claim = None

    # --- the heartbeat's thread ---------------------------------------------------------------------------
    def _extend(self, seconds: int) -> None:
        """A beat: the message's visibility (batched with the other messages in flight), then the claim. The
        renewal is one conditional write per job per beat, the only write a job without chunk progress makes
        while it runs: it is how the attempt hears of a cancel request or a takeover within one beat (renewing
        every other beat was measured to double that), so it is not thinned out."""
        started = time.monotonic()
        self._queue.extend_visibility(self._message.receipt_handle, seconds)
        self.lease.extended(started, seconds)
        with self._lock:
            if self.claim is not None:
                self.claim = self._jobs.renew(self.claim, seconds, self.progress.snapshot())
                self.lease.claimed(started, seconds)
                self._notice_cancel()

    def _write_progress(self) -> None:
        """Between beats: write the latest chunk boundary to the record if it changed. A failed write is
        skipped (the next beat carries the progress); another owner means the job is lost."""
        snapshot = self.progress.take()
        if snapshot is None:
            return
        with self._lock:
            if self.claim is None:
                return
            try:
                self.claim = self._jobs.report_progress(self.claim, snapshot)
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


def _extension_is_definitive(exc: BaseException) -> bool:
    """A heartbeat failure that retrying cannot fix: the claim was taken over or the receipt is gone."""
    return isinstance(exc, LeaseLost) or is_receipt_gone(exc)
