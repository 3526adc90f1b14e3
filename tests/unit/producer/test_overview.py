"""The operator's overview: queue counts, the oldest message's age (CloudWatch), recent outcomes from the workers'
hourly counts, live workers, and the dead-letter rows with each job's last error (the DLQ left as it was); and
what `status` costs: the same few requests whatever the fleet's size or the hour's volume."""

from __future__ import annotations

import json
import threading
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


def _registry(stack, **kwargs) -> WorkerRegistry:
    return WorkerRegistry(stack.clients.s3, stack.resources.bucket, "workers", **kwargs)


def test_recent_outcomes_sum_every_workers_counts_and_rank_the_errors(stack):
    now = datetime.now(UTC)
    for worker, (done, failures) in {"gpu-1": (2, ["unknown_voice"] * 3), "gpu-2": (5, ["timeout"])}.items():
        registry = _registry(stack)
        for n in range(done):
            registry.tally.note(f"{worker}-ok-{n}", "COMPLETED", now)
        for n, code in enumerate(failures):
            registry.tally.note(f"{worker}-bad-{n}", "FAILED", now, code)
        registry.tally.note(f"{worker}-run", "INPROGRESS", now)
        registry.seen(worker, {"in_flight": 1}, force=True)
    workers, counts = _registry(stack).summary()
    outcomes = recent_outcomes(workers, counts, now)
    assert outcomes == {
        "since": now.isoformat(),
        "completed": 7,
        "failed": 4,
        "in_progress": 2,
        "top_errors": [{"error_code": "unknown_voice", "count": 3}, {"error_code": "timeout", "count": 1}],
    }


def test_a_workers_rewrite_replaces_its_entry_and_the_previous_hour_gets_its_final_counts(stack):
    """A retried or repeated write never counts twice; after the hour turns, the worker's next write closes the
    previous hour with the counts it had (state moved_on) and it is alive in the new one."""
    clock = {"now": datetime(2030, 1, 1, 10, 59, tzinfo=UTC)}
    registry = _registry(stack, now=lambda: clock["now"])
    registry.tally.note("a", "COMPLETED", clock["now"])
    registry.seen("gpu-1", {}, force=True)
    registry.seen("gpu-1", {}, force=True)  # the same counts again: replaced, not added
    registry.tally.note("b", "COMPLETED", clock["now"])  # before the hour turns, written after
    clock["now"] = datetime(2030, 1, 1, 11, 0, 30, tzinfo=UTC)
    registry.tally.note("c", "FAILED", clock["now"], "timeout")
    registry.seen("gpu-1", {}, force=True)
    hours = registry.entries(["2030-01-01/10", "2030-01-01/11"])
    (ten,), (eleven,) = hours["2030-01-01/10"], hours["2030-01-01/11"]
    assert (ten["state"], ten["counts"]) == ("moved_on", {"completed": 2})
    assert (eleven["state"], eleven["counts"]) == ("polling", {"failed": 1, "error:timeout": 1})
    workers, counts = _registry(stack, now=lambda: clock["now"]).summary(within_s=3600)
    assert [w["worker_id"] for w in workers] == ["gpu-1"]
    assert counts == {"completed": 2, "failed": 1, "error:timeout": 1}


def test_workers_writing_one_shard_at_once_keep_every_entry(stack):
    """Conditional writes: 12 workers merging into 2 shards concurrently lose nobody's entry."""
    registries = [_registry(stack) for _ in range(12)]
    for n, registry in enumerate(registries):
        registry.tally.note(f"j{n}", "COMPLETED", datetime.now(UTC))
    threads = [
        threading.Thread(target=r.seen, args=(f"gpu-{n}", {}), kwargs={"force": True}) for n, r in enumerate(registries)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    workers, counts = _registry(stack).summary()
    assert len(workers) == 12 and counts["completed"] == 12


def test_overview_gathers_queue_dlq_outcomes_and_workers(stack):
    stack.send(_request("waiting"))
    stack.clients.sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody=_request("dead"))
    workers = _registry(stack)
    workers.tally.note("ok", "COMPLETED", datetime.now(UTC))
    workers.seen("gpu-1", {"model_id": "tiny"}, force=True)
    cloudwatch = _cloudwatch()
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_statistics", {"Datapoints": []})
        data = overview(stack.clients.sqs, cloudwatch, stack.resources.queue_url, workers)
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


def test_status_costs_under_ten_requests_whatever_the_volume_and_the_fleet(stack):
    """100 workers and 5,000 jobs this hour (segments and counts written as the workers would): `overview` makes
    the same number of requests as with none, under 10."""

    def requests_of_overview() -> int:
        calls: list[str] = []
        for client in (stack.clients.sqs, stack.clients.s3):
            client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
        cloudwatch = _cloudwatch()
        with Stubber(cloudwatch) as stub:
            stub.add_response("get_metric_statistics", {"Datapoints": []})
            overview(stack.clients.sqs, cloudwatch, stack.resources.queue_url, _registry(stack))
        for client in (stack.clients.sqs, stack.clients.s3):
            client.meta.events.unregister("before-call")
        return len(calls) + 1  # + CloudWatch's one

    empty = requests_of_overview()
    index = JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index")
    now = datetime.now(UTC)
    for n in range(100):
        registry = _registry(stack)
        entries = []
        for j in range(50):
            registry.tally.note(f"w{n}-{j}", "COMPLETED", now)
            entries.append({"job_id": f"w{n}-{j}", "status": "COMPLETED", "at": now.isoformat(), "error_code": None})
        index.write(entries, now, f"w{n}", 1)
        registry.seen(f"worker-{n}", {"in_flight": 1}, force=True)
    loaded = requests_of_overview()
    assert empty == loaded <= 9, (empty, loaded)
    workers, counts = _registry(stack).summary()
    assert len(workers) == 100 and counts["completed"] == 5000


def test_a_queue_without_a_redrive_policy_has_no_dlq(stack):
    plain = stack.clients.sqs.create_queue(QueueName=f"{stack.spec.name}-plain")["QueueUrl"]
    cloudwatch = _cloudwatch()
    with Stubber(cloudwatch) as stub:
        stub.add_response("get_metric_statistics", {"Datapoints": []})
        data = overview(stack.clients.sqs, cloudwatch, plain, _registry(stack))
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
