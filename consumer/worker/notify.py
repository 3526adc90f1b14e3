"""Publishes job events to the SNS topic, with message attributes for subscription filter policies
(`event_type`, `job_id`), retried with jittered backoff. A publish that still fails raises `NotifyError`; the
job's outcome is already recorded, so the message is kept and the next delivery replays the event. Webhooks
are delivered apart from the job (`consumer.worker.delivery`)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from consumer.core.errors import NotifyError
from consumer.core.logs import get_logger
from contracts.events import SynthesisCompleted, SynthesisFailed

log = get_logger(__name__)
Event = SynthesisCompleted | SynthesisFailed


class Notifier:
    def __init__(self, sns: Any, topic_arn: str | None, *, attempts: int = 4, max_backoff_s: float = 8.0) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._attempts = attempts
        self._max_backoff_s = max_backoff_s

    def publish(self, event: Event) -> None:
        if not self._topic_arn:
            return
        attributes = {
            "event_type": {"DataType": "String", "StringValue": event.type},
            "job_id": {"DataType": "String", "StringValue": event.job_id},
        }
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.2, max=self._max_backoff_s),
            retry=retry_if_exception_type((ClientError, BotoCoreError)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._sns.publish(
                        TopicArn=self._topic_arn, Message=event.model_dump_json(), MessageAttributes=attributes
                    )
        except (ClientError, BotoCoreError) as exc:
            raise NotifyError(f"SNS publish of {event.type} failed: {exc}") from exc
        log.info("event_published", target="sns", event_type=event.type, event_id=event.event_id)
