"""The poll loop's long poll: AWS errors are retried by QUEUE_POLL until a receive succeeds or the worker stops."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import EndpointConnectionError

from consumer.engine.fake import FakeEngine
from consumer.worker.loop import Worker
from consumer.worker.services import build_services


def _failing_receives(worker: Worker, failures: int) -> list[int]:
    """Make the worker's queue drop its first `failures` receives; returns the list of receives made."""
    receives: list[int] = []

    def receive(*_args, **_kwargs):
        receives.append(1)
        if len(receives) <= failures:
            raise EndpointConnectionError(endpoint_url="http://queue")
        return []

    worker.services.queue.receive = receive  # type: ignore[method-assign]
    return receives


def _poll_errors(worker: Worker) -> float:
    return worker.services.metrics.polls.labels("error")._value.get()


def test_a_failing_poll_is_tried_again_until_it_answers(stack):
    worker = Worker(build_services(stack.settings(), FakeEngine()))
    receives = _failing_receives(worker, failures=2)
    started = time.monotonic()
    assert worker._receive(1) == []
    assert len(receives) == 3 and _poll_errors(worker) == 2
    assert time.monotonic() - started < 0.5 + 1.0 + 1.0  # QUEUE_POLL's first two waits, at most


def test_a_stop_ends_the_wait_between_polls(stack):
    worker = Worker(build_services(stack.settings(), FakeEngine()))
    receives = _failing_receives(worker, failures=10**6)
    threading.Timer(0.3, worker.stop).start()
    started = time.monotonic()
    assert worker._receive(1) == []  # stopped: no more receives, nothing received
    assert time.monotonic() - started < 5.0  # not the minutes QUEUE_POLL would wait in all
    assert len(receives) >= 1


def test_an_answer_that_is_not_an_aws_error_is_not_retried(stack):
    worker = Worker(build_services(stack.settings(), FakeEngine()))

    def broken(*_args, **_kwargs):
        raise ValueError("a bug, not a fault")

    worker.services.queue.receive = broken  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        worker._receive(1)
    assert _poll_errors(worker) == 0
