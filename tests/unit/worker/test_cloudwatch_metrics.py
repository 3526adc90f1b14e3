"""The optional CloudWatch metrics: one PutMetricData an interval with what happened since the last (checked against
moto), nothing at all by default, and a failing CloudWatch that never breaks the worker."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from structlog.testing import capture_logs

from consumer.aws.clients import make_cloudwatch
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings
from consumer.worker import cloudwatch_metrics, process
from consumer.worker.cloudwatch_metrics import CloudWatchPublisher, start_cloudwatch_metrics

QUEUE = {"Name": "Queue", "Value": "q"}


class Recording:
    """Passes each PutMetricData through to `client` (if any) and keeps its arguments and time."""

    def __init__(self, client: Any = None, failures: list[Exception] | None = None) -> None:
        self.client, self.failures = client, list(failures or [])
        self.calls: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def put_metric_data(self, **kwargs: Any) -> None:
        with self.lock:
            self.calls.append(kwargs)
            self.times.append(time.monotonic())
        if self.failures:
            raise self.failures.pop(0)
        if self.client is not None:
            self.client.put_metric_data(**kwargs)


def _by_name(call: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """A call's data by metric name and dimension values: its value or statistic set."""
    return {
        (d["MetricName"], *(dim["Value"] for dim in d["Dimensions"])): d.get("Value", d.get("StatisticValues"))
        for d in call["MetricData"]
    }


def _some_work(metrics: Metrics) -> None:
    metrics.jobs.labels("done").inc(2)
    for code in ("unknown_voice", "unknown_voice", "internal"):
        metrics.outcome_recorded(time.time(), code)
    for rtf in (0.2, 0.4):
        metrics.real_time_factor.observe(rtf)
    metrics.queue_wait_seconds.observe(1.5)


def _statistic(cloudwatch: Any, namespace: str, name: str, dimensions: list[dict[str, str]], stat: str) -> float:
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dimensions,
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=3600,
        Statistics=[stat],
    )["Datapoints"]
    assert len(points) == 1, points
    return points[0][stat]


def test_a_call_sends_what_happened_since_the_last_one(stack):
    cloudwatch = make_cloudwatch(stack.settings())
    metrics, namespace = Metrics(), f"F5Worker-{uuid.uuid4().hex[:8]}"
    metrics.jobs.labels("done").inc(5)  # before the publisher started: not its to send
    recording = Recording(cloudwatch)
    publisher = CloudWatchPublisher(recording, metrics, namespace=namespace, queue_name="q", interval_s=60)
    _some_work(metrics)

    assert publisher.publish()
    assert _by_name(recording.calls[0]) == {
        ("JobsCompleted", "q"): 2,
        ("JobsFailed", "q"): 3,
        ("JobsFailed", "q", "internal"): 1,
        ("JobsFailed", "q", "unknown_voice"): 2,
        ("RealTimeFactor", "q"): {"SampleCount": 2, "Sum": pytest.approx(0.6), "Minimum": 0.2, "Maximum": 0.4},
        ("QueueWaitSeconds", "q"): {"SampleCount": 1, "Sum": 1.5, "Minimum": 1.5, "Maximum": 1.5},
    }
    assert recording.calls[0]["Namespace"] == namespace
    assert publisher.publish()  # an idle interval: zeros, so an alarm on them has data
    assert _by_name(recording.calls[1]) == {("JobsCompleted", "q"): 0, ("JobsFailed", "q"): 0}

    assert _statistic(cloudwatch, namespace, "JobsCompleted", [QUEUE], "Sum") == 2  # CloudWatch took them
    code = {"Name": "ErrorCode", "Value": "unknown_voice"}
    assert _statistic(cloudwatch, namespace, "JobsFailed", [QUEUE, code], "Sum") == 2
    assert _statistic(cloudwatch, namespace, "RealTimeFactor", [QUEUE], "Maximum") == 0.4
    assert _statistic(cloudwatch, namespace, "RealTimeFactor", [QUEUE], "SampleCount") == 2


def test_the_thread_calls_once_an_interval_and_once_more_when_closed():
    metrics, recording = Metrics(), Recording()
    started = time.monotonic()
    publisher = CloudWatchPublisher(recording, metrics, namespace="n", queue_name="q", interval_s=0.3).start()
    deadline = started + 10
    while len(recording.times) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with recording.lock:
        intervals = [started, *recording.times]
    metrics.jobs.labels("done").inc()
    publisher.close()
    calls = len(recording.calls)
    assert calls == len(intervals)  # the interval calls, and one more when closed
    gaps = [later - earlier for earlier, later in itertools.pairwise(intervals)]
    assert all(gap >= 0.29 for gap in gaps), gaps  # never more than one call an interval
    assert sum(_by_name(call)[("JobsCompleted", "q")] for call in recording.calls) == 1  # sent once, by the last
    time.sleep(0.5)
    assert len(recording.calls) == calls  # stopped


def test_a_failing_cloudwatch_never_raises_logs_each_kind_once_and_the_next_call_sends_what_was_missed():
    metrics = Metrics()
    throttled = ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "PutMetricData")
    recording = Recording(failures=[throttled, throttled, EndpointConnectionError(endpoint_url="x"), KeyError("?")])
    publisher = CloudWatchPublisher(recording, metrics, namespace="n", queue_name="q", interval_s=60)
    with capture_logs() as logs:
        for n in range(4):
            metrics.jobs.labels("done").inc()
            metrics.real_time_factor.observe(0.1 * (n + 1))
            assert publisher.publish() is False
        metrics.outcome_recorded(time.time(), "internal")
        assert publisher.publish() is True
    kinds = [line["kind"] for line in logs if line["event"] == "cloudwatch_metrics_failed"]
    assert kinds == ["Throttling", "EndpointConnectionError", "KeyError"]
    assert _by_name(recording.calls[-1]) == {
        ("JobsCompleted", "q"): 4,
        ("JobsFailed", "q"): 1,
        ("JobsFailed", "q", "internal"): 1,
        ("RealTimeFactor", "q"): {"SampleCount": 4, "Sum": pytest.approx(1.0), "Minimum": 0.1, "Maximum": 0.4},
    }


def test_an_unreachable_endpoint_is_a_failed_call_not_an_error():
    settings = Settings(aws_endpoint_url="http://127.0.0.1:9", queue_url="http://x/1/q", cloudwatch_metrics=True)
    publisher = CloudWatchPublisher(make_cloudwatch(settings), Metrics(), namespace="n", queue_name="q", interval_s=60)
    assert publisher.publish() is False


def _run_worker_with_a_done_and_a_failed_job(stack, monkeypatch, **overrides: Any) -> list[str]:
    """`run_worker` (burst) on one good and one failing job; the CloudWatch clients it made, by namespace."""
    made: list[str] = []
    real = cloudwatch_metrics.make_cloudwatch
    monkeypatch.setattr(cloudwatch_metrics, "make_cloudwatch", lambda settings: made.append("client") or real(settings))
    stack.send(json.dumps({"job_id": "cw-ok", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    stack.send(json.dumps({"job_id": "cw-bad", "text": "Hello.", "voice": {"voice_id": "nobody"}}))
    assert process.run_worker(stack.settings(warm_up=False, **overrides), checked=True) == 0
    return made


def test_off_by_default_no_client_and_nothing_sent(stack, monkeypatch):
    assert Settings().cloudwatch_metrics is False
    assert start_cloudwatch_metrics(stack.settings(), Metrics()) is None
    assert _run_worker_with_a_done_and_a_failed_job(stack, monkeypatch) == []
    queue = {"Name": "Queue", "Value": stack.resources.queue_url.rsplit("/", 1)[-1]}
    listed = make_cloudwatch(stack.settings()).list_metrics(Namespace="F5Worker", Dimensions=[queue])
    assert listed["Metrics"] == []


def test_a_worker_with_cloudwatch_metrics_on_sends_its_last_interval_when_it_stops(stack, monkeypatch):
    namespace = f"F5Worker-{uuid.uuid4().hex[:8]}"
    made = _run_worker_with_a_done_and_a_failed_job(
        stack, monkeypatch, cloudwatch_metrics=True, cloudwatch_namespace=namespace
    )
    assert made == ["client"]
    cloudwatch = make_cloudwatch(stack.settings())
    queue = {"Name": "Queue", "Value": stack.resources.queue_url.rsplit("/", 1)[-1]}
    assert _statistic(cloudwatch, namespace, "JobsCompleted", [queue], "Sum") == 1
    code = {"Name": "ErrorCode", "Value": "unknown_voice"}
    assert _statistic(cloudwatch, namespace, "JobsFailed", [queue, code], "Sum") == 1
    assert _statistic(cloudwatch, namespace, "RealTimeFactor", [queue], "SampleCount") == 1
