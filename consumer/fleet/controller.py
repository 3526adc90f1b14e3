"""`f5-worker scale`: every interval, observe the queue and the fleet, decide with the policy, apply it.

    observe: SQS counts (visible, in flight, delayed), the oldest message's age (CloudWatch, where there is one),
             the provider's pods, the fleet's measured rate (jobs per pod per second)
    decide:  consumer.fleet.policy.decide (the simulator runs the same function)
    apply:   provider.start(n) / provider.stop(ids): a stop is a SIGTERM, the worker's own graceful shutdown

Only the holder of the S3 lease decides; the lease carries what the policy remembers, so a successor continues.
Each decision is one `fleet_decision` log line (inputs and outcome) and the `f5_worker_fleet_*` metrics.
`--dry-run` observes and decides without the lease and without changing anything.
"""

from __future__ import annotations

import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry, Counter, Gauge

from consumer.core.errors import ProviderError
from consumer.core.logs import get_logger
from consumer.fleet.dead_letter_count import DeadLetterCount
from consumer.fleet.lease import ControllerLease
from consumer.fleet.policy import Decision, Observation, Policy, PolicyState, decide
from consumer.fleet.providers.base import Provider, pick_to_stop
from consumer.producer.overview import oldest_message_age_s, queue_counts
from consumer.storage.job_index import JobIndex

log = get_logger(__name__)


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pods = Gauge("f5_worker_fleet_pods", "Workers running or starting, as last observed", registry=r)
        self.desired = Gauge("f5_worker_fleet_desired_pods", "Workers the last decision asked for", registry=r)
        self.backlog = Gauge("f5_worker_fleet_backlog", "Messages visible, in flight or delayed", registry=r)
        self.rate = Gauge("f5_worker_fleet_rate_per_pod", "Jobs per worker per second used by the policy", registry=r)
        self.decisions = Counter("f5_worker_fleet_decisions", "Decisions by action", ["action"], registry=r)
        # For alerts (deploy/prometheus/alerts.yml); NaN while unknown (no decision yet, no DLQ, no CloudWatch data).
        self.dlq = Gauge("f5_worker_fleet_dlq_messages", "Visible messages in the queue's DLQ", registry=r)
        self.oldest_age = Gauge(
            "f5_worker_fleet_oldest_message_age_seconds", "The oldest message's age (CloudWatch)", registry=r
        )
        self.max_pods = Gauge(
            "f5_worker_fleet_max_pods", "The most workers the policy allows (max_pods or the cost cap)", registry=r
        )
        for gauge in (self.dlq, self.oldest_age, self.max_pods):
            gauge.set(math.nan)


@dataclass
class RateMeter:
    """The fleet's throughput per pod, measured only while it was saturated (messages waiting throughout), from
    the jobs index: each segment's key says how many jobs it saw finish, so one listing counts them."""

    index: JobIndex
    rate: float | None = None
    _since: float | None = None
    _saturated: bool = False

    touched: int | None = None  # jobs finished since the previous update; None: not known yet

    def update(self, now: float, visible: int, pods: int) -> float | None:
        saturated = visible > 0 and pods > 0
        self.touched = self._count(self._since, now) if self._since is not None and now > self._since else None
        if self._saturated and saturated and self.touched and self._since is not None:
            measured = self.touched / (pods * (now - self._since))
            self.rate = measured if self.rate is None else 0.5 * self.rate + 0.5 * measured
        self._since, self._saturated = now, saturated
        return self.rate

    def _count(self, since: float, until: float) -> int:
        start, end = datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(until, UTC)
        return self.index.finished(start, end)


class Controller:
    def __init__(
        self,
        policy: Policy,
        provider: Provider,
        *,
        sqs: Any,
        queue_url: str,
        lease: ControllerLease | None,
        index: JobIndex | None = None,
        cloudwatch: Any = None,
        interval_s: float = 15.0,
        metrics: FleetMetrics | None = None,
        clock: Callable[[], float] = time.time,
        on_decision: Callable[[Observation, Decision], None] | None = None,
    ) -> None:
        self.policy = policy
        self.provider = provider
        self.sqs, self.queue_url, self.cloudwatch = sqs, queue_url, cloudwatch
        self.dead_letters = DeadLetterCount(sqs, queue_url)  # the DLQ gauge: at most 2 requests an interval
        self.lease = lease  # None: --dry-run (no lease, no changes)
        self.meter = RateMeter(index) if index is not None else None
        self.interval_s = interval_s
        self.metrics = metrics or FleetMetrics()
        self.clock = clock
        self.state = PolicyState()
        self.on_decision = on_decision

    @property
    def dry_run(self) -> bool:
        return self.lease is None

    def observe(self) -> tuple[Observation, list[Any]]:
        now = self.clock()
        counts = queue_counts(self.sqs, self.queue_url)
        pods = [p for p in self.provider.pods() if p.state != "stopping"]
        rate = self.meter.update(now, counts["visible"], len(pods)) if self.meter else None
        touched = self.meter.touched if self.meter else None
        oldest = oldest_message_age_s(self.cloudwatch, self.queue_url) if self.cloudwatch is not None else None
        seen = Observation(
            now,
            counts["visible"],
            counts["in_flight"],
            counts["delayed"],
            len(pods),
            rate,
            oldest,
            active=None if touched is None else touched > 0,
        )
        return seen, pods

    def step(self) -> Decision | None:
        """One decision; None when this controller does not hold the lease (another one decides)."""
        if self.lease is not None and not self.lease.held:
            if not self.lease.try_acquire():
                return None
            self.state = PolicyState.from_json(self.lease.memory.get("policy", {}))
            if self.meter is not None and self.meter.rate is None:
                self.meter.rate = self.lease.memory.get("rate")
        seen, pods = self.observe()
        decision, state = decide(self.policy, seen, self.state)
        if self.lease is not None and not self.lease.renew({"policy": state.to_json(), "rate": seen.rate_per_pod}):
            return None  # lost to a successor: it decides from now on
        self.state = state
        self._record(seen, decision)
        if not self.dry_run:
            self._apply(decision, pods)
        return decision

    def _record(self, seen: Observation, decision: Decision) -> None:
        if self.on_decision is not None:
            self.on_decision(seen, decision)
        log.info(
            "fleet_decision",
            **decision.to_json(),
            visible=seen.visible,
            in_flight=seen.in_flight,
            delayed=seen.delayed,
            oldest_age_s=seen.oldest_age_s,
            measured_rate=seen.rate_per_pod,
            dry_run=self.dry_run,
        )
        self.metrics.pods.set(seen.pods)
        self.metrics.desired.set(decision.desired)
        self.metrics.backlog.set(seen.backlog)
        self.metrics.rate.set(decision.rate_per_pod)
        self.metrics.decisions.labels(decision.action).inc()
        self.metrics.max_pods.set(min(self.policy.max_pods, self.policy.cost_cap_pods))
        self.metrics.oldest_age.set(_known(seen.oldest_age_s))  # observed already: no extra request
        self.metrics.dlq.set(_known(self.dead_letters()))

    def _apply(self, decision: Decision, pods: list[Any]) -> None:
        if decision.action == "up":
            self.provider.start(decision.desired - decision.current)
        elif decision.action == "down":
            self.provider.stop([p.pod_id for p in pick_to_stop(pods, decision.current - decision.desired)])

    def run(self, stop: threading.Event) -> None:
        """Decide every interval until `stop`; transient AWS or provider errors skip one step. A provider's
        configuration error (bad key, bad template) propagates: the fleet is left as it is."""
        while not stop.is_set():
            try:
                if self.step() is None and not self.dry_run:
                    log.info("fleet_waiting_for_lease", consequence="another controller decides; retrying")
            except ProviderError as exc:
                if exc.config:
                    raise
                log.warning("fleet_step_failed", error=str(exc), consequence="retried at the next interval")
            except (ClientError, BotoCoreError) as exc:
                log.warning("fleet_step_failed", error=str(exc), consequence="retried at the next interval")
            stop.wait(self.interval_s)
        if self.lease is not None:
            self.lease.release()


def _known(value: float | None) -> float:
    return math.nan if value is None else value


def controller_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
