"""The worker's only door to SQS: receive, delete (at once, or soon in batches), change visibility (one message,
or many in one batch call), return for redelivery."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import RECEIPT_GONE_CODES, is_receipt_gone, storage_errors
from consumer.core.errors import StorageError
from consumer.core.logs import get_logger
from contracts.tasks import KIND_ATTRIBUTE

log = get_logger(__name__)
# What the worker reads from each message: the receive count drives backoff and redrive, the timestamps timings.
RECEIVE_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"]


BATCH_MAX = 10  # SQS: entries per batch call
EXTEND_WINDOW_S = 0.05  # heartbeats beat on a shared grid: extensions this close together go in one call


class Queue:
    def __init__(self, sqs: Any, queue_url: str, *, delete_window_s: float = 0.0) -> None:
        """`delete_window_s`: `delete_soon` gathers deletes this long into batch calls (0: deletes at once)."""
        self.sqs = sqs
        self.url = queue_url
        self._deletes = DeleteBatcher(self, delete_window_s) if delete_window_s > 0 else None
        self._extensions = CallBatcher(self._change_visibility_batch, EXTEND_WINDOW_S)

    def receive(self, max_messages: int, wait_s: int, visibility_s: int) -> list[dict[str, Any]]:
        """One long poll for up to `max_messages` (1-10). Errors propagate: the poll loop owns that retry."""
        response = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=visibility_s,
            MessageSystemAttributeNames=RECEIVE_ATTRIBUTES,
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def send_task(self, kind: str, body: str, *, delay_s: int, group_id: str, dedup_id: str) -> None:
        """Queue work for any worker (a message with the `f5-worker-kind` attribute). FIFO queues cannot delay one
        message: there the task carries its due time and the receiver holds it back."""
        params: dict[str, Any] = {
            "QueueUrl": self.url,
            "MessageBody": body,
            "MessageAttributes": {KIND_ATTRIBUTE: {"DataType": "String", "StringValue": kind}},
        }
        if self.url.endswith(".fifo"):
            params |= {"MessageGroupId": group_id, "MessageDeduplicationId": dedup_id}
        else:
            params["DelaySeconds"] = max(0, min(900, delay_s))
        with storage_errors(f"queueing a {kind} task"):
            self.sqs.send_message(**params)

    def delete(self, receipt_handle: str) -> bool:
        """Delete after success. Returns False if the receipt is no longer valid (the message was
        redelivered elsewhere: that worker will find the job finished and replay its event)."""
        with storage_errors("deleting the message"):
            try:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)
            except ClientError as exc:
                if is_receipt_gone(exc):
                    log.warning("delete_receipt_gone", error=str(exc))
                    return False
                raise
        return True

    def delete_soon(self, receipt_handle: str) -> None:
        """Delete a finished message within `delete_window_s`, batched with others (its outcome is recorded: a
        delete lost to a crash means one redelivery, which replays that outcome)."""
        if self._deletes is None:
            self.delete(receipt_handle)
        else:
            self._deletes.add(receipt_handle)

    def flush_deletes(self, timeout_s: float = 30.0) -> None:
        """Send the deletes still gathering (shutdown, burst exit) and stop the batcher's thread."""
        if self._deletes is not None:
            self._deletes.close(timeout_s)

    def delete_batch(self, receipt_handles: list[str]) -> None:
        """One DeleteMessageBatch (at most 10), checking its `Failed` entries: a gone receipt is logged (the
        message was redelivered; that worker replays the outcome), any other failure is retried on its own."""
        entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipt_handles)]
        with storage_errors("deleting messages"):
            response = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)
        for failed in response.get("Failed", []):
            code = failed.get("Code", "")
            if code in RECEIPT_GONE_CODES:
                log.warning("delete_receipt_gone", code=code, message=failed.get("Message"))
                continue
            try:
                self.delete(receipt_handles[int(failed["Id"])])
            except StorageError as exc:
                log.warning("delete_failed", error=str(exc), consequence="redelivered: replays its outcome")

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
        )

    def extend_visibility(self, receipt_handle: str, seconds: int) -> None:
        """`change_visibility` gathered with the other heartbeats' extensions of this moment into one
        ChangeMessageVisibilityBatch; a failed entry raises its own `ClientError` (e.g. ReceiptHandleIsInvalid)."""
        failed = self._extensions.call({"ReceiptHandle": receipt_handle, "VisibilityTimeout": int(seconds)})
        if failed is not None:
            code, message = failed.get("Code", "InternalError"), failed.get("Message", "")
            raise ClientError({"Error": {"Code": code, "Message": message}}, "ChangeMessageVisibilityBatch")

    def _change_visibility_batch(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries))

    def release(self, receipt_handle: str, delay_s: int = 0) -> bool:
        """Hand a message back for redelivery after `delay_s` (0: at once). Best effort with retries."""
        try:
            self.change_visibility(receipt_handle, delay_s)
        except (ClientError, BotoCoreError) as exc:
            log.warning("release_failed", error=str(exc), consequence="redelivered when visibility expires")
            return False
        return True

    def release_batch(self, receipt_handles: list[str]) -> int:
        """Return unstarted messages at once; checks the batch's `Failed` list. Returns how many failed."""
        failed = 0
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0} for i, r in enumerate(chunk)]
            try:
                response = self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                log.warning("release_batch_failed", error=str(exc), count=len(chunk))
                failed += len(chunk)
                continue
            for entry in response.get("Failed", []):
                failed += 1
                log.warning("release_batch_entry_failed", code=entry.get("Code"), message=entry.get("Message"))
        return failed

    def max_receive_count(self) -> int | None:
        """maxReceiveCount of the queue's redrive policy (None: no DLQ configured)."""
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
        policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        return int(json.loads(policy)["maxReceiveCount"]) if policy else None


@dataclass(frozen=True)
class DeadLetters:
    url: str
    arn: str
    source_arn: str


def dead_letters(sqs: Any, queue_url: str) -> DeadLetters | None:
    """The queue's DLQ from its redrive policy, or None when it has none."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy", "QueueArn"])["Attributes"]
    if "RedrivePolicy" not in attrs:
        return None
    arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
    url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
    return DeadLetters(url, arn, attrs["QueueArn"])


class DeleteBatcher:
    """Deletes handed over by finished jobs, sent by one thread as batch calls: when 10 are waiting or the oldest
    has waited `window_s`. A failed call is logged and dropped: those messages are redelivered after their
    visibility and replay their recorded outcomes."""

    def __init__(self, queue: Queue, window_s: float) -> None:
        self._queue = queue
        self.window_s = window_s
        self._waiting: deque[tuple[str, float]] = deque()
        self._changed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def add(self, receipt_handle: str) -> None:
        with self._changed:
            closed = self._closing
            if not closed:
                self._waiting.append((receipt_handle, time.monotonic()))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="deletes", daemon=True)
                    self._thread.start()
                self._changed.notify()
        if closed:  # after close: at once, on the caller's thread (not holding the batcher's lock)
            self._queue.delete(receipt_handle)

    def close(self, timeout_s: float) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due():
                    if self._closing and not self._waiting:
                        return
                    timeout = None if not self._waiting else self._waiting[0][1] + self.window_s - time.monotonic()
                    self._changed.wait(timeout)
                batch = [self._waiting.popleft()[0] for _ in range(min(BATCH_MAX, len(self._waiting)))]
            try:
                self._queue.delete_batch(batch)
            except (StorageError, ClientError, BotoCoreError) as exc:
                log.warning("delete_batch_failed", count=len(batch), error=str(exc), consequence="redelivered: replays")

    def _due(self) -> bool:
        if not self._waiting:
            return False
        full = len(self._waiting) >= BATCH_MAX
        return full or self._closing or time.monotonic() - self._waiting[0][1] >= self.window_s


class CallBatcher:
    """Single-entry calls from many threads that arrive within `window_s` of the first go out as one batch call
    of at most 10 entries, sent by the first caller; every caller gets its own entry's outcome: None, or its
    `Failed` entry. An error of the whole call is raised in every caller."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], dict[str, Any]], window_s: float) -> None:
        self._send = send
        self.window_s = window_s
        self._lock = threading.Lock()
        self._open: _Batch | None = None

    def call(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            batch, leader = self._open, self._open is None
            if batch is None:
                batch = self._open = _Batch()
            entry_id = str(len(batch.entries))
            batch.entries.append({**entry, "Id": entry_id})
            if len(batch.entries) >= BATCH_MAX:
                self._open = None
                batch.full.set()
        if leader:
            batch.full.wait(self.window_s)
            with self._lock:
                if self._open is batch:
                    self._open = None
            try:
                response = self._send(batch.entries)
                batch.failed = {f["Id"]: f for f in response.get("Failed", [])}
            except Exception as exc:  # noqa: BLE001 - every caller of this batch sees it
                batch.error = exc
            finally:
                batch.done.set()
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.failed.get(entry_id)


class _Batch:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.full = threading.Event()
        self.done = threading.Event()
        self.failed: dict[str, dict[str, Any]] = {}
        self.error: BaseException | None = None
