"""Webhook delivery, outside the job: once a job's outcome is recorded its message is done, and delivering the
event can neither hold the job's slot nor re-run or fail the job.

- `Deliveries.schedule` is called by a job after its outcome is recorded: it first queues a delayed `deliver.v1`
  task on the request queue (durable: if this process dies, any worker delivers), then hands the event to the
  sender pool, which tries `webhook_inline_attempts` times with backoff.
- A queued task (`Deliveries.run_task`) reads the job's record: already delivered → done; otherwise one POST,
  and on failure the next task is queued with a doubled delay, until `webhook_max_attempts` or
  `webhook_max_age_s`, when the record says `delivery_failed`.
- Every attempt is appended to the record's delivery log (time, status code or error); every POST of one event
  carries the same `webhook-id` (its `event_id`), so receivers deduplicate.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from consumer.aws.queue import Queue
from consumer.aws.retry import MAX_TASK_DELAY_S, WEBHOOK_INLINE, delivery_task_delay_s
from consumer.core.errors import StorageError, WebhookFailed, WebhookRefused
from consumer.core.logs import get_logger
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings
from consumer.storage.jobs import DeliveryState, JobStore
from consumer.worker import webhook
from consumer.worker.message import ReceivedMessage
from consumer.worker.notify import Notifier
from contracts.events import Event
from contracts.tasks import DELIVER_KIND, DeliveryTask

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Posted(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # worth another try later
    REFUSED = "refused"  # the target is not allowed (private or metadata address): delivery ends at once


class Deliveries:
    def __init__(self, settings: Settings, queue: Queue, jobs: JobStore, notifier: Notifier, metrics: Metrics) -> None:
        self.settings = settings
        self._queue = queue
        self._jobs = jobs
        self._notifier = notifier
        self._metrics = metrics
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self._secrets = webhook.parse_secrets(secret)
        self._pool = ThreadPoolExecutor(settings.webhook_senders, thread_name_prefix="webhook")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()  # set by `close`: inline retries stop waiting

    # --- from a job -----------------------------------------------------------------------------------------
    def schedule(self, event: Event, url: str, *, recorded: bool = True) -> None:
        """Deliver `event` to `url` soon, outside the caller's thread. `recorded`: the job has a terminal record,
        so a delayed task is queued first and takes over if the in-process attempts fail (raises `StorageError`
        when it cannot be queued: the caller keeps its message). Without a record (a request too broken to
        have a job id) delivery is in-process only."""
        if recorded:
            now = _now()
            first_retry = now + timedelta(seconds=delivery_task_delay_s(1, self.settings.webhook_retry_base_s))
            self.queue_task(DeliveryTask(job_id=event.job_id, first_at=now, not_before=first_retry))
        future = self._pool.submit(self._deliver_inline, event, url, recorded)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:  # cancelled: shut down, a task covers it
            log.error("webhook_sender_crashed", error=repr(future.exception()))

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def drain(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for in-process deliveries (queued tasks cover whatever is left)."""
        with self._lock:
            pending = set(self._pending)
        wait(pending, timeout=timeout_s)

    def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver_inline(self, event: Event, url: str, recorded: bool) -> None:
        body = event.model_dump_json().encode()
        policy = replace(WEBHOOK_INLINE, tries=self.settings.webhook_inline_attempts)
        # POSTed again while it fails; a wait ends at once on `close` (a queued task covers what is left)
        policy.retrying(retry_result=lambda posted: posted is Posted.FAILED, sleep=self._closing.wait)(
            self._post, event, url, body, recorded, final=False
        )

    # --- a queued task ----------------------------------------------------------------------------------------
    def run_task(self, message: ReceivedMessage) -> str:
        """Handle one `deliver.v1` message. Returns what happened (for logs and metrics)."""
        try:
            task = DeliveryTask.model_validate_json(message.body)
        except ValidationError as exc:
            log.warning("delivery_task_invalid", error=str(exc)[:300], consequence="dropped")
            self._queue.delete(message.receipt_handle)
            return "invalid"
        wait_s = (task.not_before - _now()).total_seconds()
        if wait_s > 1:  # FIFO queues deliver at once: hold it back until it is due
            self._queue.release(message.receipt_handle, int(min(wait_s, 43_000)))
            return "early"
        try:
            outcome = self._run_task(task)
        except StorageError as exc:
            log.warning("delivery_task_failed", job_id=task.job_id, error=str(exc), consequence="retried")
            self._queue.release(
                message.receipt_handle, delivery_task_delay_s(task.attempt, self.settings.webhook_retry_base_s)
            )
            return "retry"
        self._queue.delete(message.receipt_handle)
        return outcome

    def _run_task(self, task: DeliveryTask) -> str:
        done = self._jobs.terminal(task.job_id)
        if done is None:
            log.warning("delivery_task_without_outcome", job_id=task.job_id, consequence="dropped")
            return "no_outcome"
        if task.manual:
            self._notifier.publish(done.event)
        if done.webhook_url is None:
            return "no_webhook"
        state = done.delivery.state
        if state == DeliveryState.DELIVERED and not task.manual:
            return "already_delivered"
        if state == DeliveryState.DELIVERY_FAILED and not task.manual:
            return "already_failed"  # refused in process, or given up: nothing more to try
        last = not task.manual and (
            task.attempt >= self.settings.webhook_max_attempts
            or (_now() - task.first_at).total_seconds() >= self.settings.webhook_max_age_s
        )
        body = done.event.model_dump_json().encode()
        posted = self._post(done.event, done.webhook_url, body, True, final=last, manual=task.manual)
        if posted is not Posted.FAILED:
            return posted.value
        if last:
            return "delivery_failed"
        delay = delivery_task_delay_s(task.attempt + 1, self.settings.webhook_retry_base_s)
        self.queue_task(
            DeliveryTask(
                job_id=task.job_id,
                attempt=task.attempt + 1,
                first_at=task.first_at,
                not_before=_now() + timedelta(seconds=delay),
            )
        )
        return "requeued"

    def queue_task(self, task: DeliveryTask) -> None:
        """Queue `task` on the request queue, due at its `not_before`."""
        delay = max(0, math.ceil((task.not_before - _now()).total_seconds()))
        self._queue.send_task(
            DELIVER_KIND,
            task.model_dump_json(),
            delay_s=min(MAX_TASK_DELAY_S, delay),
            group_id=f"deliver-{task.job_id}",
            dedup_id=f"{task.job_id}-{task.attempt}-{task.not_before.timestamp():.0f}",
        )

    # --- one POST -------------------------------------------------------------------------------------------
    def _post(
        self, event: Event, url: str, body: bytes, recorded: bool, *, final: bool, manual: bool = False
    ) -> Posted:
        """POST once and log it in the record. A refused target is final whatever `final` says: retrying cannot
        help. `manual` (`jobs redeliver`): the outcome replaces the recorded delivery state, delivered included."""
        entry: dict[str, Any] = {"at": _now().isoformat(), "status": None, "error": None}
        state: DeliveryState | None = None
        posted = Posted.FAILED
        try:
            status = webhook.deliver(
                url,
                body,
                event.event_id,
                secrets=self._secrets,
                allow_private=self.settings.webhook_allow_private,
                timeout_s=self.settings.webhook_timeout_s,
            )
            entry["status"], state, posted = status, DeliveryState.DELIVERED, Posted.DELIVERED
            self._metrics.webhook_deliveries.labels("delivered").inc()
            log.info("webhook_delivered", job_id=event.job_id, event_id=event.event_id, status=status)
        except WebhookRefused as exc:  # the target turned private since it was checked: retrying cannot help
            entry["error"], state, posted = str(exc)[:300], DeliveryState.DELIVERY_FAILED, Posted.REFUSED
            self._metrics.webhook_deliveries.labels("refused").inc()
            log.warning("webhook_refused", job_id=event.job_id, reason=str(exc), consequence="delivery ended")
        except WebhookFailed as exc:
            entry["error"], entry["status"] = str(exc)[:300], exc.status
            self._metrics.webhook_deliveries.labels("failed").inc()
            log.info("webhook_failed", job_id=event.job_id, error=str(exc))
            if final:
                state = DeliveryState.DELIVERY_FAILED
                self._metrics.webhook_deliveries.labels("gave_up").inc()
                log.error("webhook_delivery_failed", job_id=event.job_id, event_id=event.event_id)
        if recorded:
            try:
                self._jobs.record_delivery(event.job_id, entry, state, replace_delivered=manual)
            except StorageError as exc:
                log.warning("delivery_log_not_written", job_id=event.job_id, error=str(exc))
        return posted
