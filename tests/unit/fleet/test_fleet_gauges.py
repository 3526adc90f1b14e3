"""The controller's gauges for alerts: the DLQ's visible messages (read from the queue's redrive policy, at most 2
extra SQS requests an interval), the oldest message's age (the CloudWatch figure it already reads: no extra
request) and the most workers the policy allows; NaN while unknown."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from consumer.fleet.controller import Controller, FleetMetrics
from consumer.fleet.dead_letter_count import DeadLetterCount
from consumer.fleet.policy import Policy
from consumer.fleet.providers.base import Pod


class CountingClient:
    """Passes every call through to the client and counts it by operation."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(**kwargs)

        return call


class FixedFleet:
    name = "fixed"

    def __init__(self, count: int) -> None:
        self.running = [Pod(f"p{i}", "running", 0.0) for i in range(count)]

    def pods(self) -> list[Pod]:
        return self.running

    def start(self, count: int) -> list[Pod]:
        raise AssertionError("a dry run starts nothing")

    def stop(self, pod_ids: list[str]) -> None:
        raise AssertionError("a dry run stops nothing")


class OldestAge:
    """CloudWatch's answer for ApproximateAgeOfOldestMessage: one datapoint."""

    def __init__(self, age_s: float) -> None:
        self.age_s = age_s
        self.calls = 0

    def get_metric_statistics(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        return {"Datapoints": [{"Timestamp": datetime.now(UTC), "Maximum": self.age_s}]}


def _value(metrics: FleetMetrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def _dry_run(sqs: Any, queue_url: str, policy: Policy, cloudwatch: Any = None, pods: int = 2) -> Controller:
    return Controller(policy, FixedFleet(pods), sqs=sqs, queue_url=queue_url, lease=None, cloudwatch=cloudwatch)


def test_gauges_are_unknown_before_the_first_decision():
    metrics = FleetMetrics()
    for name in ("dlq_messages", "oldest_message_age_seconds", "max_pods"):
        assert math.isnan(_value(metrics, f"f5_worker_fleet_{name}") or 0.0)


def test_dlq_messages_oldest_age_and_max_pods_with_at_most_two_extra_requests_an_interval(stack):
    for i in range(3):
        stack.clients.sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody=f"dead {i}")
    sqs, cloudwatch = CountingClient(stack.clients.sqs), OldestAge(420.0)
    controller = _dry_run(sqs, stack.resources.queue_url, Policy(max_pods=6), cloudwatch)
    metrics = controller.metrics
    extra = []
    for _ in range(3):
        before = sum(sqs.calls.values())
        controller.step()
        extra.append(sum(sqs.calls.values()) - before - 1)  # 1: the queue's own counts, as before
    assert extra == [2, 1, 1]  # the DLQ found (GetQueueAttributes + GetQueueUrl), then counted
    assert cloudwatch.calls == 3  # one a decision, as before: the age gauge reuses it
    assert _value(metrics, "f5_worker_fleet_dlq_messages") == 3
    assert _value(metrics, "f5_worker_fleet_oldest_message_age_seconds") == 420.0
    assert _value(metrics, "f5_worker_fleet_max_pods") == 6


def test_the_max_is_the_cost_cap_when_lower_and_the_age_unknown_without_cloudwatch(stack):
    policy = Policy(max_pods=10, price_per_pod_hour=0.5, max_dollars_per_hour=2.0)
    controller = _dry_run(stack.clients.sqs, stack.resources.queue_url, policy)
    controller.step()
    assert _value(controller.metrics, "f5_worker_fleet_max_pods") == 4
    assert math.isnan(_value(controller.metrics, "f5_worker_fleet_oldest_message_age_seconds") or 0.0)


class FakeSqs:
    """A queue `q` whose redrive policy names `dlq` (or none), with `dead` visible messages there."""

    def __init__(self, dead: int, *, redrive: bool = True) -> None:
        self.dead, self.redrive, self.failing = dead, redrive, False
        self.calls: list[str] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        self.calls.append(f"attributes {QueueUrl}")
        if self.failing:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetQueueAttributes")
        if QueueUrl == "dlq":
            return {"Attributes": {"ApproximateNumberOfMessages": str(self.dead)}}
        attrs = {"QueueArn": "arn:aws:sqs:us-east-1:1:q"}
        if self.redrive:
            attrs["RedrivePolicy"] = '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": 5}'
        return {"Attributes": attrs}

    def get_queue_url(self, QueueName: str) -> dict[str, Any]:
        self.calls.append(f"url {QueueName}")
        return {"QueueUrl": QueueName}


def test_the_dlq_is_found_again_after_refresh_every_intervals():
    sqs = FakeSqs(dead=1)
    count = DeadLetterCount(sqs, "q", refresh_every=2)
    assert [count() for _ in range(4)] == [None, 1, 1, 1]  # the fourth finds it again, keeping the count
    assert sqs.calls == ["attributes q", "url dlq", "attributes dlq", "attributes dlq", "attributes q", "url dlq"]


def test_a_failed_request_makes_the_count_unknown_and_the_next_interval_finds_the_dlq_again():
    sqs = FakeSqs(dead=2)
    count = DeadLetterCount(sqs, "q")
    assert [count(), count()] == [None, 2]
    sqs.failing = True
    assert count() is None
    sqs.failing, sqs.dead = False, 5
    assert [count(), count()] == [None, 5]


def test_a_queue_without_a_dlq_has_no_count_and_is_read_again_after_refresh_every():
    sqs = FakeSqs(dead=0, redrive=False)
    count = DeadLetterCount(sqs, "q", refresh_every=3)
    assert [count() for _ in range(5)] == [None] * 5
    assert sqs.calls == ["attributes q", "attributes q"]  # the redrive policy, read at the first and fifth
