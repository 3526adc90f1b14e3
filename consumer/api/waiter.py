"""Waiting for many jobs without listing anything.

One thread per API process serves every waiting request. With an events queue of its own (subscribed to the
topic), a second thread long-polls it and wakes a waiting request the moment its event arrives; the record of a
waiting job is then read only every `fallback_s`, in case its event was lost. Without one, each waiting job's
record is read after `poll_s`, then at doubling gaps up to `fallback_s`: a job costs a few record reads over its
wait, whatever the hour's volume (no listing grows with it). `requests` counts them all (`benchmarks/api.py`
reports it per job)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from consumer.core.logs import get_logger
from consumer.storage.jobs import JobStore
from contracts.events import Event, parse_event

log = get_logger(__name__)
RECEIVE_FAILED_WAIT_S = 1.0  # after a failed receive of the events queue (the index rounds cover the gap)
_Waiting = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Event]"]


class Waiter:
    def __init__(
        self,
        jobs: JobStore,
        *,
        poll_s: float = 0.25,
        fallback_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sqs: Any = None,
        events_queue_url: str | None = None,
    ) -> None:
        self._jobs = jobs
        self._poll_s = poll_s
        self._fallback_s = fallback_s
        self._clock = clock
        self._lock = threading.Condition()
        self._waiting: dict[str, list[_Waiting]] = {}
        self._next_read: dict[str, float] = {}  # monotonic time of the job's next record read
        self._gap: dict[str, float] = {}  # seconds until the read after that
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake = False
        self._sqs = sqs
        self._events_queue_url = events_queue_url
        if events_queue_url:
            self._poll_s = fallback_s  # the events wake waiters; the index only backs them up
            threading.Thread(target=self._listen, name="api-events", daemon=True).start()
        self.requests = 0  # AWS requests made (listings and record reads)

    async def wait(self, job_id: str, timeout_s: float) -> Event | None:
        """The job's outcome, or None when `timeout_s` passes first (the job goes on)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Event] = loop.create_future()
        with self._lock:
            self._waiting.setdefault(job_id, []).append((loop, future))
            self._next_read.setdefault(job_id, 0.0)  # read the record on the next round: it may be done already
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="api-waiter", daemon=True)
                self._thread.start()
            self._wake = True  # a round now, not after the current pause
            self._lock.notify_all()
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._forget(job_id, future)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    # --- the events queue -------------------------------------------------------------------------------------
    def _listen(self) -> None:
        while not self._closed:
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5
                ).get("Messages", [])
            except Exception as exc:  # noqa: BLE001 - retried; the index rounds cover the gap
                log.warning("api_events_receive_failed", error=str(exc))
                with self._lock:  # a second before the next receive, unless closed meanwhile
                    self._lock.wait_for(lambda: self._closed, timeout=RECEIVE_FAILED_WAIT_S)
                continue
            self.requests += 1
            for message in messages:
                try:
                    event = parse_event(message["Body"])
                except ValueError:
                    event = None
                if event is not None:
                    self._resolve(event.job_id, event)
            if messages:  # this replica's own queue: every event is consumed here
                self._sqs.delete_message_batch(
                    QueueUrl=self._events_queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
                self.requests += 1

    # --- the shared loop ------------------------------------------------------------------------------------
    def _forget(self, job_id: str, future: asyncio.Future[Event]) -> None:
        with self._lock:
            left = [w for w in self._waiting.get(job_id, []) if w[1] is not future]
            if left:
                self._waiting[job_id] = left
            else:
                self._waiting.pop(job_id, None)
                self._next_read.pop(job_id, None)
                self._gap.pop(job_id, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                waiting = set(self._waiting)
            try:
                self._round(waiting)
            except Exception as exc:  # noqa: BLE001 - a failed round is retried; waiters time out on their own
                log.warning("api_waiter_round_failed", error=str(exc))
            with self._lock:
                if not self._wake:
                    self._lock.wait(self._poll_s)
                self._wake = False

    def _round(self, waiting: set[str]) -> None:
        now = time.monotonic()
        with self._lock:
            due = [j for j in waiting if self._next_read.get(j, 0.0) <= now]
            for job_id in due:
                gap = self._gap.get(job_id, self._poll_s)
                self._next_read[job_id] = now + gap
                self._gap[job_id] = min(2 * gap, self._fallback_s)
        for job_id in due:
            done = self._jobs.terminal(job_id)
            self.requests += 1
            if done is not None:
                self._resolve(job_id, done.event)

    def _resolve(self, job_id: str, event: Event) -> None:
        with self._lock:
            waiters = list(self._waiting.get(job_id, []))
        for loop, future in waiters:
            loop.call_soon_threadsafe(_set, future, event)


def _set(future: asyncio.Future[Event], event: Event) -> None:
    if not future.done():
        future.set_result(event)
