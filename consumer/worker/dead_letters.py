"""The dead-letter watch: every job whose message reaches the DLQ ends with a recorded outcome.

A job records its failure itself on its last receive, but some dead letters arrive with no outcome: a worker
killed (or paused past its lease) during the last receive, or a queue that moves a message for its own reasons.
Every `dead_letter_check_s` one worker's sweep receives a page of the DLQ and, for each dead letter whose job
has no terminal record, takes the job's claim, records the failure (`retries_exhausted`, redrivable: a redrive
reopens the job as its next generation), publishes it and hands its webhook to the senders. Dead letters stay in
the DLQ (made visible again at once) for `f5-worker dlq list` and a redrive. A job whose claim is still live
(its worker may yet finish) is left for a later sweep.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.queue import Queue, dead_letters
from consumer.core.errors import (
    JobAlreadyCompleted,
    JobAlreadyFailed,
    JobInProgressElsewhere,
    LeaseLost,
    NotifyError,
    StorageError,
)
from consumer.core.logs import get_logger
from consumer.worker.message import ReceivedMessage
from consumer.worker.outcome_events import failed_event
from consumer.worker.services import Services
from consumer.worker.validate import RequestBody
from contracts.codes import ErrorCode

log = get_logger(__name__)
PAGE = 10  # dead letters looked at per sweep (one ReceiveMessage)
HOLD_S = 30  # how long a dead letter is hidden while it is looked at


class DeadLetterWatch:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._dlq: Queue | None = None
        self._resolved = False

    def sweep(self) -> int:
        """Look at one page of the DLQ; returns how many failures were recorded."""
        dlq = self._dead_letter_queue()
        if dlq is None:
            return 0
        recorded = 0
        for raw in dlq.receive(PAGE, 0, HOLD_S):
            message = ReceivedMessage.from_sqs(raw)
            try:
                recorded += self._record_outcome(message)
            finally:
                dlq.release(message.receipt_handle, 0)  # visible again for `dlq list` and a redrive
        return recorded

    def _dead_letter_queue(self) -> Queue | None:
        if not self._resolved:
            found = dead_letters(self.services.queue.sqs, self.services.queue.url)
            self._dlq, self._resolved = (Queue(self.services.queue.sqs, found.url) if found else None), True
        return self._dlq

    def _record_outcome(self, message: ReceivedMessage) -> int:
        body = RequestBody(message.body)
        job_id = body.job_id if message.kind is None else None
        if job_id is None:
            return 0  # a task, or a body that names no job (its failure was published when it was received)
        record, _ = self.services.jobs.read(job_id)
        if record is not None and record.terminal:
            return 0  # it has its outcome (a claim would reopen a redrivable failure)
        owner = f"{self.services.settings.worker_id}/dlq"
        ttl = self.services.settings.visibility_timeout_s
        try:
            claim = self.services.jobs.claim(job_id, owner, ttl, message.message_id, message.receive_count)
        except (JobAlreadyCompleted, JobAlreadyFailed):
            return 0  # it has its outcome
        except JobInProgressElsewhere as held:
            log.info("dead_letter_claimed_elsewhere", job_id=job_id, reason=str(held), consequence="next sweep")
            return 0
        event = failed_event(
            job_id,
            message,
            claim.generation,
            self.services.settings.worker_id,
            ErrorCode.RETRIES_EXHAUSTED,
            "the message reached the dead-letter queue with no outcome recorded (its worker was stopped, or lost "
            "its lease, on the last receive)",
            retryable=False,
            metadata=body.metadata,
        )
        webhook_url = body.webhook_hint
        try:
            self.services.jobs.fail(claim, event, webhook_url, redrivable=True)
        except LeaseLost:
            return 0
        log.error("dead_letter_failed", job_id=job_id, generation=claim.generation, consequence="failure recorded")
        try:
            self.services.notifier.publish(event)
            if webhook_url:
                self.services.deliveries.schedule(event, webhook_url)
        except (NotifyError, StorageError) as exc:
            self.services.metrics.events_unpublished.inc()
            log.error("event_not_published", job_id=job_id, error=str(exc), consequence="recorded only")
        return 1


def sweep_safely(watch: DeadLetterWatch) -> str:
    """A sweep as a loop task: AWS errors are logged (the next sweep tries again)."""
    try:
        recorded = watch.sweep()
    except (ClientError, BotoCoreError, StorageError) as exc:
        log.warning("dead_letter_sweep_failed", error=str(exc), consequence="the next sweep tries again")
        return "dead_letter_sweep_failed"
    return "dead_letters_recorded" if recorded else "dead_letter_sweep"
