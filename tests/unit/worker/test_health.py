"""The container's health endpoints: alive while the model loads, ready once it is loaded, and alive after that
only while the queue is polled, counting from ready until the first poll (a worker between `worker_ready` and
its first poll is not dead)."""

from __future__ import annotations

import time

from consumer.core.metrics import Metrics
from consumer.worker.health import HealthServer


def _server(max_poll_age_s: float) -> tuple[HealthServer, Metrics]:
    metrics = Metrics()
    return HealthServer(metrics, max_poll_age_s, port=0, host="127.0.0.1"), metrics


def test_alive_while_starting_and_not_ready_until_marked() -> None:
    server, _ = _server(0.2)
    assert server.respond("/healthz")[0] == 200
    assert server.respond("/readyz")[:2] == (503, b"starting\n")
    server.mark_ready()
    assert server.respond("/readyz")[:2] == (200, b"ready\n")


def test_between_ready_and_the_first_poll_the_worker_is_alive_until_that_poll_is_overdue() -> None:
    server, metrics = _server(0.2)
    server.mark_ready()
    assert server.respond("/healthz")[0] == 200  # no poll yet, just ready
    time.sleep(0.3)
    assert server.respond("/healthz")[0] == 503  # the first poll is overdue
    metrics.poll_succeeded()
    assert server.respond("/healthz")[0] == 200
    time.sleep(0.3)
    assert server.respond("/healthz")[0] == 503  # polls stopped
