"""A received SQS message with the attributes the lifecycle needs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consumer.aws.queue import RECEIVE_ATTRIBUTES
from contracts.tasks import KIND_ATTRIBUTE

__all__ = ["RECEIVE_ATTRIBUTES", "ReceivedMessage"]


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at: datetime
    first_received_at: datetime
    received_monotonic: float = field(default_factory=time.monotonic)
    attributes: dict[str, Any] = field(default_factory=dict, repr=False)
    kind: str | None = None  # a task's kind (message attribute f5-worker-kind); None: a synthesis request

    @classmethod
    def from_sqs(cls, raw: dict[str, Any]) -> ReceivedMessage:
        attrs = raw.get("Attributes", {})
        now_ms = int(time.time() * 1000)
        sent_ms = int(attrs.get("SentTimestamp", now_ms))
        first_ms = int(attrs.get("ApproximateFirstReceiveTimestamp", now_ms))
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(attrs.get("ApproximateReceiveCount", 1)),
            sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
            first_received_at=datetime.fromtimestamp(first_ms / 1000, UTC),
            attributes=attrs,
            kind=raw.get("MessageAttributes", {}).get(KIND_ATTRIBUTE, {}).get("StringValue"),
        )

    @property
    def queue_wait_s(self) -> float:
        return max(0.0, (self.first_received_at - self.sent_at).total_seconds())
