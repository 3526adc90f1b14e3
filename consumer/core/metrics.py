"""Prometheus metrics of one worker process (own registry, so tests can run several workers)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640)
_RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("f5_worker_jobs", "Messages handled, by outcome", ["outcome"], registry=r)
        self.retries = Counter("f5_worker_retries", "Retryable failures, by error code", ["code"], registry=r)
        self.synthesis_seconds = Histogram(
            "f5_worker_synthesis_seconds", "Engine time per job", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.queue_wait_seconds = Histogram(
            "f5_worker_queue_wait_seconds", "Enqueue to first receive", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.real_time_factor = Histogram(
            "f5_worker_real_time_factor",
            "Synthesis seconds per audio second",
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "f5_worker_webhook_deliveries",
            "Webhook POSTs by result: delivered, failed, refused; gave_up when retries ran out (delivery_failed)",
            ["result"],
            registry=r,
        )
        self.events_unpublished = Counter(
            "f5_worker_events_unpublished", "Recorded outcomes whose SNS publish failed on the last receive", registry=r
        )
        self.heartbeats = Counter("f5_worker_heartbeat_extensions", "Visibility extensions", registry=r)
        self.in_flight = Gauge("f5_worker_in_flight", "Messages being processed", registry=r)
        self.polls = Counter("f5_worker_polls", "ReceiveMessage calls, by result", ["result"], registry=r)
        self.last_poll = Gauge("f5_worker_last_successful_poll_timestamp", "Unix time", registry=r)
        self.startup_seconds = Gauge(
            "f5_worker_startup_seconds",
            "Seconds from process start to each start-up phase",
            ["phase"],
            registry=r,
        )
        self.ready = Gauge("f5_worker_ready", "1 when the model is loaded and AWS answered", registry=r)
        self.last_poll_monotonic: float | None = None

    def poll_succeeded(self) -> None:
        self.last_poll_monotonic = time.monotonic()
        self.last_poll.set(time.time())
        self.polls.labels("ok").inc()

    def seconds_since_poll(self) -> float | None:
        if self.last_poll_monotonic is None:
            return None
        return time.monotonic() - self.last_poll_monotonic

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def count(self, outcome: str) -> float:
        return self.jobs.labels(outcome)._value.get()
