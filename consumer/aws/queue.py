"""The worker's only door to SQS: receive, delete, change visibility, return for redelivery."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import is_receipt_gone, storage_errors
from consumer.aws.retry import aws_retry
from consumer.core.logs import get_logger
from contracts.tasks import KIND_ATTRIBUTE

log = get_logger(__name__)
# What the worker reads from each message: the receive count drives backoff and redrive, the timestamps timings.
RECEIVE_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp"]


class Queue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs = sqs
        self.url = queue_url

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
            aws_retry(self.sqs.send_message)(**params)

    def delete(self, receipt_handle: str) -> bool:
        """Delete after success. Returns False if the receipt is no longer valid (the message was
        redelivered elsewhere: that worker will find the job finished and replay its event)."""
        with storage_errors("deleting the message"):
            try:
                aws_retry(self.sqs.delete_message)(QueueUrl=self.url, ReceiptHandle=receipt_handle)
            except ClientError as exc:
                if is_receipt_gone(exc):
                    log.warning("delete_receipt_gone", error=str(exc))
                    return False
                raise
        return True

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=int(seconds)
        )

    def release(self, receipt_handle: str, delay_s: int = 0) -> bool:
        """Hand a message back for redelivery after `delay_s` (0: at once). Best effort with retries."""
        try:
            aws_retry(self.change_visibility)(receipt_handle, delay_s)
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
