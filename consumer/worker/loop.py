"""The poll loop: long-poll for as many messages as the admission allows (fixed slots, or `auto`: enough to keep
the device busy through AWS round trips, see `consumer.worker.admission`), never more than the jobs it can hold
(no prefetch buffer that could strand messages), run each in its own thread with its own heartbeat, and stop
cleanly.

Shutdown order (SIGTERM/SIGINT): stop polling at once — the open long poll is left to a poller thread,
which hands anything it still receives straight back (visibility 0) — then give in-flight jobs
`shutdown_grace_s` to finish while their heartbeats keep running, then abort the rest, which return their
messages for another worker: visible at once, or, while our own long poll is still open, hidden until it ends
(else that poll would receive them back, costing each a receive). Exit code 0. Every `dead_letter_check_s` a
sweep of the DLQ runs beside the jobs (`consumer.worker.dead_letters`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import error_code
from consumer.aws.retry import QUEUE_POLL
from consumer.core.logs import get_logger
from consumer.worker.abort import Abort
from consumer.worker.dead_letters import DeadLetterWatch, sweep_safely
from consumer.worker.job import Outcome, process_message
from consumer.worker.message import ReceivedMessage
from consumer.worker.services import Services
from contracts.tasks import DELIVER_KIND

log = get_logger(__name__)
_CONNECTION_CODES = {"AccessDenied", "InvalidClientTokenId", "ExpiredToken", "UnrecognizedClientException"}


class Worker:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.stopping = threading.Event()  # no new messages
        self.aborting = Abort()  # in-flight jobs give up and return their messages
        self._poll_started = 0.0  # monotonic start of the open long poll
        self._dead_letters = DeadLetterWatch(services)
        self._next_sweep = time.monotonic() + self.settings.dead_letter_check_s
        self.admission = services.admission
        self._jobs = ThreadPoolExecutor(self.admission.cap, thread_name_prefix="job")
        self._poller = ThreadPoolExecutor(1, thread_name_prefix="poll")
        # Queued tasks (webhook deliveries) run beside the jobs, never in a job's slot.
        self._tasks = ThreadPoolExecutor(self.settings.webhook_senders, thread_name_prefix="task")
        self._in_flight: set[Future[Outcome]] = set()
        self._task_futures: set[Future[str]] = set()
        self.outcomes: dict[str, int] = {}
        self.task_outcomes: dict[str, int] = {}

    # --- control ---------------------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        self.stop()

    def stop(self) -> None:
        self.stopping.set()

    # --- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> int:
        log.info(
            "worker_started",
            queue_url=self.settings.queue_url,
            max_in_flight=self.settings.max_in_flight,
            cap=self.admission.cap,
            worker_id=self.settings.worker_id,
            model_id=self.services.engine.model_id,
        )
        pending_poll: Future[list[ReceivedMessage]] | None = None
        poll_started_idle = False
        while not self.stopping.is_set():
            self._reap()
            self._sweep_dead_letters_when_due()
            wanted = self.admission.wanted(len(self._in_flight))
            if wanted == 0 and pending_poll is None:
                if len(self._in_flight) >= self.admission.cap:
                    wait(self._in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                else:  # enough jobs ahead of the device: wait until one moves on
                    self.admission.wait(0.2)
                continue
            if len(self._task_futures) >= 2 * self.settings.webhook_senders:  # tasks queue up: receive no more
                wait(self._task_futures, timeout=0.5, return_when=FIRST_COMPLETED)
                continue
            if pending_poll is None:
                self._seen("polling")
                # Burst mode trusts an empty poll only if nothing was in flight when it started: a job may
                # still hand its message back (retry) while the poll runs.
                poll_started_idle = not self._in_flight and not self._task_futures
                self._poll_started = time.monotonic()
                pending_poll = self._poller.submit(self._receive, wanted)
            done, _ = wait({pending_poll}, timeout=0.2)
            if not done:
                continue
            try:
                messages = pending_poll.result()
            except Exception:  # AWS errors are retried inside; anything else is a bug: log it, back off
                log.exception("poll_crashed")
                messages = []
                self.stopping.wait(1.0)
            pending_poll = None
            idle = poll_started_idle and not self._in_flight and not self._task_futures
            if not messages and self.settings.burst and idle:
                log.info("queue_empty", consequence="burst mode: exiting")
                break
            for message in messages:
                self._start(message)
        self._shutdown(pending_poll)
        return 0

    def _start(self, message: ReceivedMessage) -> None:
        if message.kind is not None:
            self._task_futures.add(self._tasks.submit(self._run_task, message))
            return
        future = self._jobs.submit(process_message, message, self.services, self.aborting)
        self._in_flight.add(future)
        self.services.metrics.in_flight.set(len(self._in_flight))

    def _sweep_dead_letters_when_due(self) -> None:
        """A DLQ sweep beside the jobs, as a task, every `dead_letter_check_s` (consumer.worker.dead_letters)."""
        every = self.settings.dead_letter_check_s
        if every <= 0 or time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + every
        self._task_futures.add(self._tasks.submit(sweep_safely, self._dead_letters))

    def _run_task(self, message: ReceivedMessage) -> str:
        if message.kind != DELIVER_KIND:
            log.warning("unknown_task_kind", kind=message.kind, consequence="left for a worker that knows it")
            self.services.queue.release(message.receipt_handle, self.settings.visibility_timeout_s)
            return "unknown_kind"
        return self.services.deliveries.run_task(message)

    def _reap(self) -> None:
        for task in [t for t in self._task_futures if t.done()]:
            self._task_futures.discard(task)
            try:
                result = task.result()
            except Exception:
                log.exception("task_crashed", consequence="redelivered after its visibility")
                result = "crashed"
            self.task_outcomes[result] = self.task_outcomes.get(result, 0) + 1
        finished = [f for f in self._in_flight if f.done()]
        for future in finished:
            self._in_flight.discard(future)
            try:
                outcome = future.result().value
            except Exception:
                log.exception("job_thread_crashed", consequence="message redelivered after its visibility")
                outcome = "crashed"
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.services.metrics.in_flight.set(len(self._in_flight))
        if finished and not self._in_flight and self.services.index is not None:
            self.services.index.flush_soon()  # idle: the index need not wait for its batch

    def _receive(self, max_messages: int) -> list[ReceivedMessage]:
        """One long poll, retried with jittered backoff on AWS errors (longer for credential errors).
        Messages that arrive after stop was requested are handed straight back."""
        retrying = QUEUE_POLL.retrying(
            lambda exc: isinstance(exc, ClientError | BotoCoreError),
            before_sleep=self._log_poll_failure,
            sleep=self._interruptible_sleep,
        )
        for attempt in retrying:
            with attempt:
                if self.stopping.is_set():
                    return []
                started = time.monotonic()
                received = self.services.queue.receive(
                    max_messages, self.settings.wait_time_s, self.settings.visibility_timeout_s
                )
        self.admission.received(time.monotonic() - started, len(received))
        self.services.metrics.poll_succeeded()
        messages = [ReceivedMessage.from_sqs(raw) for raw in received]
        if messages and self.stopping.is_set():
            failed = self.services.queue.release_batch([m.receipt_handle for m in messages])
            log.info("late_messages_returned", count=len(messages), failed=failed)
            return []
        return messages

    def _log_poll_failure(self, retry_state) -> None:
        exc = retry_state.outcome.exception()
        self.services.metrics.polls.labels("error").inc()
        credential = error_code(exc) in _CONNECTION_CODES
        log.warning("poll_failed", error=str(exc), credential_error=credential, attempt=retry_state.attempt_number)

    def _interruptible_sleep(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    # --- shutdown -------------------------------------------------------------------------------------------
    def _shutdown(self, pending_poll: Future | None) -> None:
        grace = self.settings.shutdown_grace_s
        if self._in_flight:
            log.info("draining", in_flight=len(self._in_flight), grace_s=grace)
            _, not_done = wait(self._in_flight, timeout=grace)
            if not_done:
                log.info("grace_expired", returning=len(not_done))
                if pending_poll is not None and not pending_poll.done():  # it must not receive what we return
                    poll_left_s = self._poll_started + self.settings.wait_time_s - time.monotonic()
                    self.aborting.hidden_s = max(0, math.ceil(poll_left_s) + 1)
                self.aborting.set()
                wait(not_done)
        wait(self._task_futures, timeout=max(grace, self.settings.webhook_timeout_s))
        self.services.deliveries.drain(timeout_s=grace)  # what is left is delivered by the queued retries
        self._reap()
        if pending_poll is not None:
            # The open long poll returns within WaitTimeSeconds; anything it got is handed back.
            pending_poll.result()
        self._jobs.shutdown(wait=True)
        self._tasks.shutdown(wait=True)
        self.services.queue.flush_deletes()
        self.services.deliveries.close()
        self._poller.shutdown(wait=True)
        self.services.close()
        self._seen("stopped", force=True)
        log.info("worker_stopped", outcomes=self.outcomes, tasks=self.task_outcomes)

    def _seen(self, state: str, *, force: bool = False) -> None:
        """This worker's liveness record (at most a write a minute; `f5-worker status` lists it)."""
        if self.services.workers is None:
            return
        info = {
            "model_id": self.services.engine.model_id,
            "device": self.services.engine.device,
            "in_flight": len(self._in_flight),
            "outcomes": dict(self.outcomes),
        }
        self.services.workers.seen(self.settings.worker_id, info, state=state, force=force)
