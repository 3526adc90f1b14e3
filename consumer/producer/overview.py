"""What an operator sees at a glance: the queue and its DLQ (counts, oldest message), recent outcomes from the
jobs index, live workers, and what the dead-lettered messages are. Read-only except for the DLQ peek (SQS has
no peek: see `peek_dlq`)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.queue import DeadLetters, dead_letters
from consumer.storage.job_record import Failed, Released
from consumer.storage.jobs import JobStore
from consumer.storage.workers import WorkerRegistry

COUNT_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}
__all__ = ["DeadLetters", "dead_letters"]  # re-exported: `dlq` commands read the DLQ through this module


def queue_counts(sqs: Any, queue_url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(COUNT_ATTRIBUTES))["Attributes"]
    return {name: int(attrs.get(attr, 0)) for attr, name in COUNT_ATTRIBUTES.items()}


def oldest_message_age_s(cloudwatch: Any, queue_url: str) -> float | None:
    """SQS's `ApproximateAgeOfOldestMessage` over the last 5 minutes (CloudWatch; no queue attribute has it,
    and receiving to look would count as a delivery). None where CloudWatch has no data (emulators)."""
    now = datetime.now(UTC)
    try:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_url.rstrip("/").rsplit("/", 1)[-1]}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        ).get("Datapoints", [])
    except (ClientError, BotoCoreError):
        return None
    if not points:
        return None
    return float(max(points, key=lambda p: p["Timestamp"])["Maximum"])


def recent_outcomes(workers: list[dict[str, Any]], counts: dict[str, int], since: datetime) -> dict[str, Any]:
    """Jobs completed and failed since `since` (the start of the previous hour), the most common error codes of
    the failed ones, and the jobs the live workers hold now, from the workers' hourly counts."""
    errors = Counter({k.removeprefix("error:"): n for k, n in counts.items() if k.startswith("error:")})
    return {
        "since": since.isoformat(),
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "in_progress": sum(int(w.get("in_flight", 0)) for w in workers),
        "top_errors": [{"error_code": code, "count": n} for code, n in errors.most_common(5)],
    }


def overview(sqs: Any, cloudwatch: Any, queue_url: str, registry: WorkerRegistry) -> dict[str, Any]:
    """Everything `f5-worker status` shows, as data: at most 8 AWS requests whatever the fleet's size or volume
    (queue counts, its redrive policy, DLQ counts, CloudWatch's oldest age, 2 x 2 worker shards)."""
    dlq = dead_letters(sqs, queue_url)
    workers, counts = registry.summary()
    since = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return {
        "queue": {
            "url": queue_url,
            **queue_counts(sqs, queue_url),
            "oldest_age_s": oldest_message_age_s(cloudwatch, queue_url),
        },
        "dlq": None if dlq is None else {"url": dlq.url, "messages": queue_counts(sqs, dlq.url)["visible"]},
        "last_hour": recent_outcomes(workers, counts, since),
        "workers": workers,
    }


def peek_dlq(sqs: Any, dlq_url: str, jobs: JobStore, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead-lettered messages with the job id and the last error their records hold. SQS has no
    peek: each message is received once (its count in the DLQ goes up by one; the DLQ itself has no redrive
    policy, and a redrive starts a fresh count) and made visible again at once."""
    seen: dict[str, dict[str, Any]] = {}
    receipts: list[str] = []
    try:
        while len(seen) < limit:
            messages = sqs.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=30,  # hidden while we list, so one pass sees each message once
                WaitTimeSeconds=1,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            ).get("Messages", [])
            if not messages:
                break
            for m in messages:
                receipts.append(m["ReceiptHandle"])
                seen.setdefault(m["MessageId"], _dead_letter(m, jobs))
    finally:
        for receipt in receipts:  # looked at, not taken
            with contextlib.suppress(ClientError):
                sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return list(seen.values())


def job_id_of(body: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    job_id = data.get("job_id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) else None


def _dead_letter(message: dict[str, Any], jobs: JobStore) -> dict[str, Any]:
    attrs = message.get("Attributes", {})
    job_id = job_id_of(message["Body"])
    row: dict[str, Any] = {
        "message_id": message["MessageId"],
        "job_id": job_id,
        "receive_count": int(attrs.get("ApproximateReceiveCount", 0)),
        "sent_at": datetime.fromtimestamp(int(attrs.get("SentTimestamp", 0)) / 1000, UTC).isoformat(),
        "status": None,
        "error_code": None,
        "error_message": None,
    }
    if job_id is None:
        row["error_message"] = "the body names no job id"
        return row
    try:
        record, _ = jobs.read(job_id)
    except Exception as exc:  # noqa: BLE001 - shown, not raised: the listing goes on
        row["error_message"] = f"record unreadable: {exc}"
        return row
    if record is None:
        row["error_message"] = "no record: no worker ever claimed it (crashed before the claim?)"
        return row
    row["status"] = record.status.value
    if isinstance(record, Failed):
        row["error_code"], row["error_message"] = record.failure.error_code, record.failure.error_message
    elif isinstance(record, Released) and record.released is not None:
        row["error_code"], row["error_message"] = record.released.error_code, record.released.reason
    return row
