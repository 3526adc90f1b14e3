"""The operator's overview: queue counts, the oldest message's age (CloudWatch), recent outcomes from the jobs
index, live workers, and the dead-letter rows with each job's last error (the DLQ left as it was)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from consumer.producer.overview import (
    job_id_of,
    oldest_message_age_s,
    overview,
    peek_dlq,
    queue_counts,
    recent_outcomes,
)
from consumer.storage.job_index import JobIndex
from consumer.storage.jobs import JobStore
from consumer.storage.workers import WorkerRegistry
from contracts.codes import ErrorCode
from contracts.events import SynthesisFailed, event_id_for

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/f5-requests"


def _index(stack) -> JobIndex:
    return JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index")


def _jobs(stack) -> JobStore:
    return JobStore(stack.clients.s3, stack.resources.bucket, "jobs")


def _cloudwatch() -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def _request(job_id: str) -> str:
    return json.dumps({"job_id": job_id, "text": "Hi.", "voice": {"voice_id": "basic-en"}})


# --- pure parts --------------------------------------------------------------------------------------------------
def test_job_id_of_a_body():
    assert job_id_of(_request("j-1")) == "j-1"
    assert job_id_of("not json") is None
    assert job_id_of("[1]") is None
    assert job_id_of('{"job_id": 5}') is None
    assert job_id_of("{}") is None


def test_the_oldest_age_is_the_newest_datapoints_maximum_for_the_queue_name():
    cloudwatch = _cloudwatch()
    now = datetime.now(UTC)
    with Stubber(cloudwatch) as stub:
        stub.add_response(
            "get_metric_statistics",
            {
                "Datapoints": [
                    {"Timestamp": now - timedelta(minutes=2), "Maximum": 90.0},
                    {"Timestamp": now - timedelta(minutes=1), "Maximum": 30.0},
                ]
            },
            {
                "Namespace": "AWS/SQS",
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": "f5-requests"}],
                "StartTime": ANY,
                "EndTime": ANY,
                "Period": 60,
                "Statistics": ["Maximum"],
            },
        )
        assert oldest_message_age_s(cloudwatch, QUEUE_URL + "/") == 30.0


def test_no_datapoints_or_no_cloudwatch_is_unknown():
    cloudwatch = _cloudwatch()
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_statistics", {"Datapoints": []})
        assert oldest_message_age_s(cloudwatch, QUEUE_URL) is None
        stub.add_client_error("get_metric_statistics", "AccessDenied", http_status_code=403)
        assert oldest_message_age_s(cloudwatch, QUEUE_URL) is None


# --- on the stack ------------------------------------------------------------------------------------------------
def test_queue_counts(stack):
    assert queue_counts(stack.clients.sqs, stack.resources.queue_url) == {"visible": 0, "in_flight": 0, "delayed": 0}
    stack.send(_request("a"))
    stack.send(_request("b"))
    stack.send(_request("c"), DelaySeconds=60)
    stack.clients.sqs.receive_message(QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    assert queue_counts(stack.clients.sqs, stack.resources.queue_url) == {"visible": 1, "in_flight": 1, "delayed": 1}


def test_recent_outcomes_count_each_state_and_the_top_errors_in_the_window(stack):
    index = _index(stack)
    now = datetime.now(UTC)
    index.note("ok-1", "COMPLETED", now)
    index.note("ok-2", "COMPLETED", now)
    index.note("run-1", "INPROGRESS", now)
    for n in range(3):
        index.note(f"voice-{n}", "FAILED", now, "unknown_voice")
    index.note("slow-1", "FAILED", now, "timeout")
    index.note("old-1", "FAILED", now - timedelta(hours=3), "timeout")  # outside the window
    outcomes = recent_outcomes(index, now - timedelta(hours=1))
    assert outcomes == {
        "completed": 2,
        "failed": 4,
        "in_progress": 1,
        "top_errors": [{"error_code": "unknown_voice", "count": 3}, {"error_code": "timeout", "count": 1}],
    }


def test_overview_gathers_queue_dlq_outcomes_and_workers(stack):
    stack.send(_request("waiting"))
    stack.clients.sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody=_request("dead"))
    index = _index(stack)
    index.note("ok", "COMPLETED", datetime.now(UTC))
    workers = WorkerRegistry(stack.clients.s3, stack.resources.bucket, "workers")
    workers.seen("gpu-1", {"model_id": "tiny"}, force=True)
    cloudwatch = _cloudwatch()
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_statistics", {"Datapoints": []})
        data = overview(stack.clients.sqs, cloudwatch, stack.resources.queue_url, index, workers)
    assert data["queue"] == {
        "url": stack.resources.queue_url,
        "visible": 1,
        "in_flight": 0,
        "delayed": 0,
        "oldest_age_s": None,
    }
    assert data["dlq"] == {"url": stack.resources.dlq_url, "messages": 1}
    assert data["last_hour"]["completed"] == 1
    assert [w["worker_id"] for w in data["workers"]] == ["gpu-1"] and data["workers"][0]["model_id"] == "tiny"


def test_a_queue_without_a_redrive_policy_has_no_dlq(stack):
    plain = stack.clients.sqs.create_queue(QueueName=f"{stack.spec.name}-plain")["QueueUrl"]
    cloudwatch = _cloudwatch()
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_statistics", {"Datapoints": []})
        data = overview(
            stack.clients.sqs,
            cloudwatch,
            plain,
            _index(stack),
            WorkerRegistry(stack.clients.s3, stack.resources.bucket, "workers"),
        )
    assert data["dlq"] is None


def _fail(stack, job_id: str) -> None:
    jobs = _jobs(stack)
    event = SynthesisFailed(
        event_id=event_id_for(job_id, "failed:1"),
        job_id=job_id,
        attempt=3,
        worker_id="w",
        occurred_at=datetime.now(UTC),
        error_code=ErrorCode.RETRIES_EXHAUSTED,
        error_message=f"gave up on {job_id}",
        retryable=False,
    )
    jobs.fail(jobs.claim(job_id, "w", 60, "m-1", 3), event, redrivable=True)


def test_dead_letter_rows_name_each_jobs_last_error_and_stay_in_the_dlq(stack):
    _fail(stack, "dead-failed")
    jobs = _jobs(stack)
    jobs.release(jobs.claim("dead-released", "w", 60, "m-2"), "engine crashed", ErrorCode.ENGINE_ERROR)
    dlq = stack.resources.dlq_url
    for body in (_request("dead-failed"), _request("dead-released"), _request("dead-unclaimed"), "not json"):
        stack.clients.sqs.send_message(QueueUrl=dlq, MessageBody=body)

    rows = {row["job_id"]: row for row in peek_dlq(stack.clients.sqs, dlq, jobs, limit=10)}
    assert set(rows) == {"dead-failed", "dead-released", "dead-unclaimed", None}
    failed = rows["dead-failed"]
    assert (failed["status"], failed["error_code"], failed["error_message"]) == (
        "FAILED",
        "retries_exhausted",
        "gave up on dead-failed",
    )
    assert failed["receive_count"] == 1 and failed["sent_at"].startswith(str(datetime.now(UTC).year))
    released = rows["dead-released"]
    assert (released["status"], released["error_code"], released["error_message"]) == (
        "RELEASED",
        "engine_error",
        "engine crashed",
    )
    assert rows["dead-unclaimed"]["status"] is None and "no record" in rows["dead-unclaimed"]["error_message"]
    assert rows[None]["error_message"] == "the body names no job id"
    assert stack.queue_counts(dlq) == (4, 0)  # looked at, not taken


def test_peek_stops_at_the_limit(stack):
    dlq = stack.resources.dlq_url
    for n in range(3):
        stack.clients.sqs.send_message(QueueUrl=dlq, MessageBody=_request(f"dead-{n}"))
    assert len(peek_dlq(stack.clients.sqs, dlq, _jobs(stack), limit=2)) == 2
    assert stack.queue_counts(dlq) == (3, 0)
    assert peek_dlq(stack.clients.sqs, stack.resources.queue_url, _jobs(stack), limit=5) == []
