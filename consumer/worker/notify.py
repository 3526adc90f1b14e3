"""Publishes job events: to the SNS topic (with message attributes for subscription filter policies) and to
the request's webhook. Each target is retried with jittered backoff; a target that still fails raises
`NotifyError`, which keeps the message for another attempt (the audio and result record are already safe)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import Retrying as _Retrying
from tenacity import retry_if_exception_type, stop_after_attempt, wait_random_exponential

from consumer.core.errors import NotifyError, WebhookFailed, WebhookRefused
from consumer.core.logs import get_logger
from consumer.worker import webhook
from contracts.events import SynthesisCompleted, SynthesisFailed

log = get_logger(__name__)
Event = SynthesisCompleted | SynthesisFailed


class Notifier:
    def __init__(
        self,
        sns: Any,
        topic_arn: str | None,
        *,
        webhook_secret: str | None = None,
        webhook_allow_private: bool = False,
        webhook_timeout_s: float = 10.0,
        attempts: int = 4,
        max_backoff_s: float = 8.0,
    ) -> None:
        self._sns = sns
        self._topic_arn = topic_arn
        self._secret = webhook_secret
        self._allow_private = webhook_allow_private
        self._timeout_s = webhook_timeout_s
        self._attempts = attempts
        self._max_backoff_s = max_backoff_s

    def _retrying(self, *errors: type[BaseException]) -> _Retrying:
        return _Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=0.2, max=self._max_backoff_s),
            retry=retry_if_exception_type(errors),
            reraise=True,
        )

    def publish(self, event: Event, webhook_url: str | None) -> None:
        body = event.model_dump_json().encode()
        if self._topic_arn:
            self._publish_sns(event, body.decode())
        if webhook_url:
            self._post_webhook(event, webhook_url, body)

    def _publish_sns(self, event: Event, body: str) -> None:
        attributes = {
            "event_type": {"DataType": "String", "StringValue": event.type},
            "job_id": {"DataType": "String", "StringValue": event.job_id},
        }
        try:
            for attempt in self._retrying(ClientError, BotoCoreError):
                with attempt:
                    self._sns.publish(TopicArn=self._topic_arn, Message=body, MessageAttributes=attributes)
        except (ClientError, BotoCoreError) as exc:
            raise NotifyError(f"SNS publish of {event.type} failed: {exc}") from exc
        log.info("event_published", target="sns", event_type=event.type, event_id=event.event_id)

    def _post_webhook(self, event: Event, url: str, body: bytes) -> None:
        try:
            for attempt in self._retrying(WebhookFailed):
                with attempt:
                    status = webhook.deliver(
                        url,
                        body,
                        event.event_id,
                        secret=self._secret,
                        allow_private=self._allow_private,
                        timeout_s=self._timeout_s,
                    )
        except WebhookRefused as exc:
            # Targets are checked before synthesis; one that turns private since (DNS change) is skipped:
            # retrying cannot make it valid, and the SNS event has gone out.
            log.warning("webhook_refused", reason=str(exc), event_id=event.event_id)
            return
        except WebhookFailed as exc:
            raise NotifyError(f"webhook delivery failed: {exc}") from exc
        log.info("event_published", target="webhook", status=status, event_type=event.type)
