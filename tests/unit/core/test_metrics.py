"""The device's duty cycle, the AWS requests per operation, failures by code and enqueue-to-outcome latency, as
/metrics shows them; the statistic sets the CloudWatch publisher takes."""

from __future__ import annotations

import json
import time

import pytest

from consumer.core.errors import NotifyError
from consumer.core.metrics import DeviceMeter, Metrics, StatSet
from consumer.engine.fake import FakeEngine


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_overlapping_engine_calls_count_once_and_the_window_slides():
    clock = Clock()
    meter = DeviceMeter(clock)
    first, second = meter.busy(), meter.busy()
    first.__enter__()
    clock.now += 10
    second.__enter__()  # waits for the engine lock while the first one works: the device is busy once
    clock.now += 10
    first.__exit__(None, None, None)
    clock.now += 10
    second.__exit__(None, None, None)
    assert meter.busy_s == pytest.approx(30)
    clock.now += 30  # idle
    assert meter.duty(60) == pytest.approx(30 / 60)
    assert meter.duty(30) == 0.0
    with meter.busy():
        clock.now += 15
        assert meter.duty(30) == pytest.approx(15 / 30)  # a call still running counts


def test_metrics_show_the_duty_cycle_and_requests_by_operation(stack, make_worker):
    for n in range(3):
        stack.send(json.dumps({"job_id": f"m-{n}", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    worker, services = make_worker(FakeEngine(work_s=0.3), max_in_flight=1)  # the fake engine has no lock
    worker.run()
    text = services.metrics.render().decode()
    assert 'f5_worker_aws_requests_total{operation="DeleteMessageBatch"}' in text  # three deletes, batched
    assert 'operation="DeleteMessage"}' not in text
    assert 'f5_worker_aws_requests_total{operation="ReceiveMessage"}' in text
    assert services.metrics.device.busy_s >= 0.9  # three jobs of 0.3 s of engine work
    assert "f5_worker_device_duty_ratio" in text and "f5_worker_device_busy_seconds" in text


def test_a_failure_counts_its_code_and_latency_is_measured_from_the_sent_timestamp(stack, make_worker):
    stack.send(json.dumps({"job_id": "ok-1", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    stack.send(json.dumps({"job_id": "no-voice-1", "text": "Hello.", "voice": {"voice_id": "nobody"}}))
    stack.send(json.dumps({"job_id": "no-voice-2", "text": "Hello.", "voice": {"voice_id": "nobody"}}))
    time.sleep(1.5)  # enqueued, waiting: the latency counts this, whatever the worker does after its receive
    worker, services = make_worker(FakeEngine())
    worker.run()
    metrics = services.metrics
    assert metrics.failures_by_code() == {"unknown_voice": 2}
    latency = metrics.registry.get_sample_value
    assert latency("f5_worker_job_latency_seconds_count") == 3  # the completed job and both failures
    assert 3 * 1.5 <= latency("f5_worker_job_latency_seconds_sum") < 3 * 30
    assert 'f5_worker_failures_total{code="unknown_voice"} 2.0' in metrics.render().decode()


def test_a_failure_replayed_after_its_publish_failed_counts_once(stack, make_worker):
    stack.send(json.dumps({"job_id": "twice-1", "text": "Hello.", "voice": {"voice_id": "nobody"}}))
    worker, services = make_worker(FakeEngine())
    publish, calls = services.notifier.publish, []

    def publish_fails_once(event):
        calls.append(event)
        if len(calls) == 1:
            raise NotifyError("SNS is down")
        publish(event)

    services.notifier.publish = publish_fails_once
    worker.run()
    assert worker.outcomes == {"retry": 1, "replayed": 1}  # recorded, then replayed by the next delivery
    assert services.metrics.failures_by_code() == {"unknown_voice": 1}
    assert services.metrics.registry.get_sample_value("f5_worker_job_latency_seconds_count") == 1


def test_outcome_recorded_observes_seconds_since_the_sent_timestamp():
    metrics = Metrics()
    metrics.outcome_recorded(time.time() - 100)
    metrics.outcome_recorded(time.time() + 5)  # a clock ahead of SQS's: no negative latency
    value = metrics.registry.get_sample_value
    assert 100 <= value("f5_worker_job_latency_seconds_sum") < 101
    assert value("f5_worker_job_latency_seconds_bucket", {"le": "80.0"}) == 1  # the future one, as 0
    assert value("f5_worker_job_latency_seconds_bucket", {"le": "160.0"}) == 2
    assert metrics.failures_by_code() == {}


def test_the_rtf_and_queue_wait_histograms_hand_over_their_statistic_set_once():
    metrics = Metrics()
    for rtf in (0.2, 0.05, 0.4):
        metrics.real_time_factor.observe(rtf)
    assert metrics.real_time_factor.take() == StatSet(3, pytest.approx(0.65), 0.05, 0.4)
    assert metrics.real_time_factor.take() is None
    assert metrics.registry.get_sample_value("f5_worker_real_time_factor_count") == 3  # Prometheus keeps all
    assert metrics.queue_wait_seconds.take() is None
