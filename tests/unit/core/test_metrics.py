"""The device's duty cycle and the AWS requests per operation, as /metrics shows them."""

from __future__ import annotations

import json

import pytest

from consumer.core.metrics import DeviceMeter
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
