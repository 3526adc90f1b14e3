"""Prometheus metrics of one worker process (own registry, so tests can run several workers)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640)
_RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)
_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240)


@dataclass(frozen=True)
class StatSet:
    """Count, sum, min and max of some observations (CloudWatch's statistic set)."""

    count: int
    total: float
    low: float
    high: float

    def __add__(self, other: StatSet) -> StatSet:
        return StatSet(
            self.count + other.count, self.total + other.total, min(self.low, other.low), max(self.high, other.high)
        )


class WindowedHistogram(Histogram):
    """A histogram (unlabelled) that also keeps the statistic set of what it observed since `take` last ran."""

    def _metric_init(self) -> None:
        super()._metric_init()
        self._window_lock = threading.Lock()
        self._window: StatSet | None = None

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        super().observe(amount, exemplar)
        seen = StatSet(1, amount, amount, amount)
        with self._window_lock:
            self._window = seen if self._window is None else self._window + seen

    def take(self) -> StatSet | None:
        """What was observed since the last take (None: nothing), and a fresh window."""
        with self._window_lock:
            taken, self._window = self._window, None
        return taken


class DeviceMeter:
    """The device's busy time: wall time during which at least one engine call runs (calls waiting for the engine
    lock overlap one that holds it, so the union is what the device spends). `duty(window)` is the busy share of
    the last `window_s` seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keep_s: float = 600.0) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._lock = threading.Lock()
        self._active = 0
        self._since = 0.0
        self._spans: deque[tuple[float, float]] = deque()  # finished busy spans, oldest first
        self.busy_s = 0.0

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._lock:
            if self._active == 0:
                self._since = self._clock()
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    now = self._clock()
                    self._spans.append((self._since, now))
                    self.busy_s += now - self._since
                    while self._spans and self._spans[0][1] < now - self._keep_s:
                        self._spans.popleft()

    def duty(self, window_s: float = 60.0) -> float:
        with self._lock:
            now = self._clock()
            start = now - window_s
            busy = sum(max(0.0, end - max(begin, start)) for begin, end in self._spans if end > start)
            if self._active:
                busy += now - max(self._since, start)
        return min(1.0, busy / window_s)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("f5_worker_jobs", "Messages handled, by outcome", ["outcome"], registry=r)
        self.retries = Counter("f5_worker_retries", "Retryable failures, by error code", ["code"], registry=r)
        self.synthesis_seconds = Histogram(
            "f5_worker_synthesis_seconds", "Engine time per job", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.queue_wait_seconds = WindowedHistogram(
            "f5_worker_queue_wait_seconds", "Enqueue to first receive", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.real_time_factor = WindowedHistogram(
            "f5_worker_real_time_factor",
            "Synthesis seconds per audio second",
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "f5_worker_failures", "Jobs whose recorded outcome is a failure, by error code", ["code"], registry=r
        )
        self.job_latency_seconds = Histogram(
            "f5_worker_job_latency_seconds",
            "Enqueue (SentTimestamp) to the outcome recorded, completed and failed jobs",
            buckets=_LATENCY_BUCKETS,
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
        self.device = DeviceMeter()
        duty = Gauge(
            "f5_worker_device_duty_ratio", "Share of the last 60 s the engine was working on a job", registry=r
        )
        duty.set_function(self.device.duty)
        busy = Gauge("f5_worker_device_busy_seconds", "Seconds the engine has worked on jobs since start", registry=r)
        busy.set_function(lambda: self.device.busy_s)
        self.aws_requests = Counter(
            "f5_worker_aws_requests", "AWS API calls made by this process, by operation", ["operation"], registry=r
        )
        self.last_poll_monotonic: float | None = None

    def poll_succeeded(self) -> None:
        self.last_poll_monotonic = time.monotonic()
        self.last_poll.set(time.time())
        self.polls.labels("ok").inc()

    def seconds_since_poll(self) -> float | None:
        if self.last_poll_monotonic is None:
            return None
        return time.monotonic() - self.last_poll_monotonic

    def outcome_recorded(self, sent_at: float, failure_code: str | None = None) -> None:
        """A job's outcome is in its record: its latency from `sent_at` (unix seconds: the message's
        SentTimestamp) and, for a failure, its error code."""
        self.job_latency_seconds.observe(max(0.0, time.time() - sent_at))
        if failure_code is not None:
            self.failures.labels(failure_code).inc()

    def failures_by_code(self) -> dict[str, float]:
        return {
            sample.labels["code"]: sample.value
            for family in self.failures.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def count(self, outcome: str) -> float:
        return self.jobs.labels(outcome)._value.get()
