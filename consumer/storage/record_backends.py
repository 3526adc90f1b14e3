"""Where job records live: one S3 object per job (the default) or one DynamoDB item per job (`F5_WORKER_JOBS_TABLE`).

`JobStore` drives the record's state machine with two primitives, the same on both: read the record with its
version, and put a new body on a condition (`IfNoneMatch="*"`: only if there is none; `IfMatch=version`: only if it
is still the version read). A failed condition raises botocore's ClientError, which `consumer.aws.failures.
is_conflict` recognizes for both (S3 412 PreconditionFailed, DynamoDB ConditionalCheckFailedException).

Why a table: a DynamoDB write of a record under 1 KB costs one write unit ($0.625 per million on demand,
us-east-1) against $5.00 per million S3 PUTs, and the two writes of a job's common path (claim, outcome) are most
of its AWS cost after the audio upload. An item expires by DynamoDB's TTL on `expires_at` (epoch seconds), as
S3 records do by the bucket's lifecycle rule.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import ClientError

from consumer.aws.clients import AwsClients
from consumer.aws.failures import is_missing
from consumer.aws.resources import PARTITION_KEY, TTL_ATTRIBUTE
from consumer.core.settings import AwsSettings


class RecordBackend(Protocol):
    def where(self, job_id: str) -> str:
        """The record's location, for messages."""
        ...

    def get(self, job_id: str) -> tuple[bytes, str] | None:
        """(body, version) of the record, or None when there is none. Strongly consistent."""
        ...

    def put(self, job_id: str, body: bytes, **condition: str) -> str:
        """Store `body` if `condition` holds (`IfNoneMatch="*"` or `IfMatch=version`; none: unconditionally);
        the new version. A failed condition raises ClientError."""
        ...


class S3Records:
    """`{prefix}/{job_id}.json` in `bucket`; the version is the object's ETag."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix.strip("/")

    def key(self, job_id: str) -> str:
        return f"{self._prefix}/{job_id}.json"

    def where(self, job_id: str) -> str:
        return f"s3://{self._bucket}/{self.key(job_id)}"

    def get(self, job_id: str) -> tuple[bytes, str] | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self.key(job_id))
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return response["Body"].read(), str(response["ETag"])

    def put(self, job_id: str, body: bytes, **condition: str) -> str:
        response = self._s3.put_object(
            Bucket=self._bucket, Key=self.key(job_id), Body=body, ContentType="application/json", **condition
        )
        return str(response["ETag"])


class DynamoRecords:
    """One item per job in `table` (partition key `job_id`): the record's JSON in `body`, a fresh random
    `version` per write (the condition of the next), `expires_at` = write time + `ttl_days` for DynamoDB's TTL."""

    def __init__(self, dynamodb: Any, table: str, ttl_days: float, clock: Callable[[], float] = time.time) -> None:
        self._db = dynamodb
        self.table = table
        self._ttl_s = ttl_days * 86400
        self._clock = clock

    def where(self, job_id: str) -> str:
        return f"dynamodb://{self.table}/{job_id}"

    def get(self, job_id: str) -> tuple[bytes, str] | None:
        item = self._db.get_item(TableName=self.table, Key={PARTITION_KEY: {"S": job_id}}, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        return item["body"]["S"].encode(), item["version"]["S"]

    def put(self, job_id: str, body: bytes, **condition: str) -> str:
        version = uuid.uuid4().hex
        item = {
            PARTITION_KEY: {"S": job_id},
            "body": {"S": body.decode()},
            "version": {"S": version},
            TTL_ATTRIBUTE: {"N": str(int(self._clock() + self._ttl_s))},
        }
        extra: dict[str, Any] = {}
        if condition.get("IfNoneMatch") == "*":
            extra["ConditionExpression"] = f"attribute_not_exists({PARTITION_KEY})"
        elif "IfMatch" in condition:
            extra["ConditionExpression"] = "version = :version"
            extra["ExpressionAttributeValues"] = {":version": {"S": condition["IfMatch"]}}
        self._db.put_item(TableName=self.table, Item=item, **extra)
        return version


def records_for(clients: AwsClients, settings: AwsSettings) -> RecordBackend:
    """The record backend the settings name: the DynamoDB table when `jobs_table` is set, else S3."""
    if settings.jobs_table:
        return DynamoRecords(clients.dynamodb, settings.jobs_table, settings.jobs_table_ttl_days)
    return S3Records(clients.s3, settings.bucket, settings.jobs_prefix)
