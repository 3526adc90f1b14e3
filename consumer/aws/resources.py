"""The AWS resources f5-worker needs, declared once. This spec feeds the embedded moto bootstrap
(`f5-worker local`, tests), `f5-worker init` (LocalStack or a real account) and the infrastructure template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.clients import AwsClients
from consumer.aws.failures import error_code

PARTITION_KEY = "job_id"  # of the job records' table
TTL_ATTRIBUTE = "expires_at"  # epoch seconds; DynamoDB deletes the item after it


@dataclass(frozen=True)
class ResourceSpec:
    name: str = "f5-worker"
    bucket: str = "f5-worker-audio"
    fifo: bool = False
    visibility_timeout_s: int = 120
    max_receive_count: int = 5
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600  # longer than the source's: the enqueue timestamp is kept
    max_message_size: int = 262_144
    events_queue: bool = True  # an SQS queue subscribed to the topic (how the demo and tests read events)
    jobs_table: bool = False  # job records in a DynamoDB table (`{name}-jobs`) instead of S3 objects

    @property
    def jobs_table_name(self) -> str:
        return f"{self.name}-jobs"

    @property
    def suffix(self) -> str:
        return ".fifo" if self.fifo else ""

    @property
    def queue_name(self) -> str:
        return f"{self.name}-requests{self.suffix}"

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-requests-dlq{self.suffix}"

    @property
    def topic_name(self) -> str:
        return f"{self.name}-events"

    @property
    def events_queue_name(self) -> str:
        return f"{self.name}-events"


@dataclass(frozen=True)
class Resources:
    queue_url: str
    dlq_url: str
    bucket: str
    topic_arn: str
    events_queue_url: str | None
    jobs_table: str = ""

    def settings_fields(self) -> dict[str, str]:
        """The worker settings that point at these resources, as `Settings(**fields)` takes them."""
        fields = {"queue_url": self.queue_url, "bucket": self.bucket, "topic_arn": self.topic_arn}
        return fields | ({"jobs_table": self.jobs_table} if self.jobs_table else {})

    def env(self) -> dict[str, str]:
        """The same settings as environment variables."""
        return {f"F5_WORKER_{name.upper()}": value for name, value in self.settings_fields().items()}


def queue_attributes(spec: ResourceSpec, retention_s: int) -> dict[str, str]:
    attrs = {
        "VisibilityTimeout": str(spec.visibility_timeout_s),
        "MessageRetentionPeriod": str(retention_s),
        "MaximumMessageSize": str(spec.max_message_size),
        "ReceiveMessageWaitTimeSeconds": "20",
    }
    if spec.fifo:
        # Content-based dedup would silently drop a second identical request within 5 minutes:
        # producers set MessageDeduplicationId (the job id) instead.
        attrs |= {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    return attrs


def bootstrap(clients: AwsClients, spec: ResourceSpec = ResourceSpec(), region: str = "us-east-1") -> Resources:
    """Create (or find) every resource. Idempotent."""
    sqs, s3, sns = clients.sqs, clients.s3, clients.sns
    dlq_url = sqs.create_queue(QueueName=spec.dlq_name, Attributes=queue_attributes(spec, spec.dlq_retention_s))[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attrs = queue_attributes(spec, spec.retention_s)
    attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count})
    queue_url = sqs.create_queue(QueueName=spec.queue_name, Attributes=attrs)["QueueUrl"]
    _create_bucket(s3, spec.bucket, region)
    topic_arn = sns.create_topic(Name=spec.topic_name)["TopicArn"]
    events_url = None
    if spec.events_queue:
        events_url = sqs.create_queue(QueueName=spec.events_queue_name)["QueueUrl"]
        events_arn = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sqs.set_queue_attributes(QueueUrl=events_url, Attributes={"Policy": allow_topic_policy(events_arn, topic_arn)})
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=events_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )
    table = create_jobs_table(clients.dynamodb, spec.jobs_table_name) if spec.jobs_table else ""
    return Resources(queue_url, dlq_url, spec.bucket, topic_arn, events_url, table)


def create_jobs_table(dynamodb: Any, name: str) -> str:
    """The job records' table, as infra/f5-worker.yaml declares it: on demand, key `job_id`, TTL on `expires_at`."""
    try:
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": PARTITION_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": PARTITION_KEY, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    try:
        dynamodb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    except ClientError as exc:
        if error_code(exc) != "ValidationException":  # already enabled
            raise
    return name


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def allow_topic_policy(queue_arn: str, topic_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                }
            ],
        }
    )
