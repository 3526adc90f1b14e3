"""Does the configured queue and bucket answer, with these credentials, at this endpoint? Asked by `f5-worker run`
before it loads the model and by `f5-worker api` before it listens: a wrong endpoint, name or credential ends in
a second with one line naming the cause and one the fix (`ConfigurationError`, exit 2)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import explain_aws_failure, http_status
from consumer.core.settings import Settings


def _quick_clients(settings: Settings) -> tuple[Any, Any]:
    """One try each, short timeouts: a wrong endpoint must not take the retry budget of a running process."""
    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"})
    session = boto3.session.Session(region_name=settings.aws_region)
    endpoint = settings.aws_endpoint_url
    return (
        session.client("sqs", endpoint_url=endpoint, config=config),
        session.client("s3", endpoint_url=endpoint, config=config.merge(Config(s3={"addressing_style": "path"}))),
    )


def check_aws(settings: Settings) -> None:
    """The queue and the bucket answer, with these credentials, at this endpoint."""
    assert settings.queue_url and settings.bucket
    sqs, s3 = _quick_clients(settings)
    try:
        sqs.get_queue_attributes(QueueUrl=settings.queue_url, AttributeNames=["QueueArn"])
        _head_bucket(s3, settings.bucket)
    except (BotoCoreError, ClientError) as exc:
        raise explain_aws_failure(exc, settings) from exc


def _head_bucket(s3: Any, bucket: str) -> None:
    """The bucket exists. 403 passes: HeadBucket needs an unconditional s3:ListBucket, which the generated
    policies grant only per prefix (infra/), while a bucket that does not exist answers 404 whatever the policy;
    the credentials themselves were just checked by the queue call."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if http_status(exc) != 403:
            raise
