"""The DLQ's visible messages for the controller's `f5_worker_fleet_dlq_messages`, at most 2 SQS requests an
interval: an interval either finds the DLQ from the queue's redrive policy (GetQueueAttributes + GetQueueUrl) or
counts it (one GetQueueAttributes). The DLQ is found at the first interval, every `refresh_every` intervals (a
changed redrive policy) and after a failed request; those intervals give the last count, a failed one None."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.queue import dead_letters
from consumer.core.logs import get_logger
from consumer.producer.overview import queue_counts

log = get_logger(__name__)


class DeadLetterCount:
    def __init__(self, sqs: Any, queue_url: str, *, refresh_every: int = 240) -> None:
        self.sqs, self.queue_url = sqs, queue_url
        self.refresh_every = refresh_every  # intervals (240 at 15 s: an hour)
        self._dlq_url: str | None = None
        self._found = False  # the redrive policy was read (it may name no DLQ)
        self._since_found = 0  # intervals since the redrive policy was read
        self.last: int | None = None

    def __call__(self) -> int | None:
        """Visible messages in the DLQ; None where the queue has none or nothing was counted yet."""
        try:
            if not self._found or self._since_found >= self.refresh_every:
                self._find()
            else:
                self._since_found += 1
                if self._dlq_url is not None:
                    self.last = queue_counts(self.sqs, self._dlq_url)["visible"]
        except (ClientError, BotoCoreError) as exc:
            self._found, self.last = False, None  # unknown; the DLQ is found again at the next interval
            log.warning("fleet_dlq_count_failed", error=str(exc), consequence="unknown until it answers")
        return self.last

    def _find(self) -> None:
        found = dead_letters(self.sqs, self.queue_url)
        self._dlq_url = None if found is None else found.url
        self._found, self._since_found = True, 0
        if found is None:
            self.last = None
