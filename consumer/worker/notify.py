"""Publishes job events to the SNS topic, with message attributes for subscription filter policies
(`event_type`, `job_id`), retried by the EVENT_PUBLISH policy (`consumer.aws.retry`). A publish that still
fails raises `NotifyError`; the job's outcome is already recorded, so the message is kept and the next delivery
replays the event. Webhooks are delivered apart from the job (`consumer.worker.delivery`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.retry import EVENT_PUBLISH
from consumer.core.errors import NotifyError
from consumer.core.logs import get_logger
from contracts.events import Event

log = get_logger(__name__)


def _aws_error(exc: BaseException) -> bool:
    return isinstance(exc, ClientError | BotoCoreError)


class Notifier:
    def __init__(self, sns: Any, topic_arn: str | None, *, attempts: int = EVENT_PUBLISH.tries or 1) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._policy = replace(EVENT_PUBLISH, tries=attempts)

    def publish(self, event: Event) -> None:
        if not self._topic_arn:
            return
        attributes = {
            "event_type": {"DataType": "String", "StringValue": event.type},
            "job_id": {"DataType": "String", "StringValue": event.job_id},
        }
        try:
            self._policy.retrying(_aws_error)(
                self._sns.publish,
                TopicArn=self._topic_arn,
                Message=event.model_dump_json(),
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as exc:
            raise NotifyError(f"SNS publish of {event.type} failed: {exc}") from exc
        log.info("event_published", target="sns", event_type=event.type, event_id=event.event_id)
