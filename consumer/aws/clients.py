"""boto3 clients built from settings: the default credential chain (so role credentials refresh),
an endpoint override for moto/LocalStack, timeouts that make a hung call fail instead of stall, and one retry
layer (`consumer.aws.retry`: botocore's own retries are off)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from consumer.aws.retry import install
from consumer.core.settings import AwsSettings

NO_RETRIES: Any = {"mode": "standard", "total_max_attempts": 1}  # the retry layer is `install`'s


@dataclass(frozen=True)
class AwsClients:
    sqs: Any
    s3: Any
    sns: Any
    dynamodb: Any = None  # job records when F5_WORKER_JOBS_TABLE is set


def make_cloudwatch(settings: AwsSettings) -> Any:
    """A CloudWatch client (`status`'s oldest-message age), with the same endpoint and region as the others."""
    session = boto3.session.Session(region_name=settings.aws_region)
    client = session.client(
        "cloudwatch", endpoint_url=settings.aws_endpoint_url, config=Config(connect_timeout=5, retries=NO_RETRIES)
    )
    install(client)
    return client


def make_clients(settings: AwsSettings, max_pool_connections: int = 10) -> AwsClients:
    """`max_pool_connections`: HTTP connections kept per client (the API, with many requests at once, wants more)."""
    session = boto3.session.Session(region_name=settings.aws_region)
    base: dict[str, Any] = {
        "connect_timeout": 5,
        "retries": NO_RETRIES,
        "max_pool_connections": max_pool_connections,
    }
    # The long poll must return before the socket gives up: read timeout above WaitTimeSeconds.
    sqs_cfg = Config(read_timeout=settings.wait_time_s + 10, **base)
    s3_cfg = Config(read_timeout=60, signature_version="s3v4", s3={"addressing_style": "path"}, **base)
    other_cfg = Config(read_timeout=30, **base)
    endpoint = settings.aws_endpoint_url
    clients = AwsClients(
        sqs=session.client("sqs", endpoint_url=endpoint, config=sqs_cfg),
        s3=session.client("s3", endpoint_url=endpoint, config=s3_cfg),
        sns=session.client("sns", endpoint_url=endpoint, config=other_cfg),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint, config=other_cfg),
    )
    for client in (clients.sqs, clients.s3, clients.sns, clients.dynamodb):
        install(client)
    return clients
