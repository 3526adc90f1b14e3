"""`f5-worker scale simulate`: the fleet policy against a simulated load, before paying for GPUs.

A discrete-event simulation (one heap of events, simulated time only, deterministic for a seed):

    jobs     arrive (constant, bursts, a day curve or a trace), each asking for some seconds of audio
    queue    FIFO; a running pod takes one job at a time: audio_s x RTF + a fixed overhead per job
    control  every interval, `consumer.fleet.policy.decide` (the controller's own function) sees the queue
             (visible = waiting, in_flight = being synthesized, delayed = 0, pods = starting + running, the rate
             measured while jobs waited) and its decision is applied: "up" creates pods that poll after the
             start-up time, "down" stops the pods `pick_to_stop` picks (a busy one finishes its job first)
    billing  every pod costs its price per hour from creation until it stops

Arrivals are generated up front from the seed, so two policies are compared on the same jobs. The simulation runs
until `duration_s` (the last arrival), then until the queue is drained and the fleet is back at `min_pods` (or
`tail_s` more at most), so the cost includes the scale-down tail.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.fleet import policy as fleet_policy
from consumer.fleet.policy import Observation, Policy, PolicyState
from consumer.fleet.providers.base import Pod, PodState, pick_to_stop
from consumer.fleet.requests import Load
from consumer.fleet.scenario import RATE_WINDOW, Scenario


# --- the result -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """The state at one decision, after it was applied."""

    t: float
    waiting: int
    in_flight: int
    pods: int  # starting + running (not stopping)
    ready: int  # polling or working
    wait_s: float | None  # the longest wait of the jobs started since the previous decision


@dataclass(frozen=True)
class Change:
    t: float
    action: str  # up | down
    before: int
    after: int
    reason: str


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    policy: Policy
    jobs: int
    completed: int
    waits: tuple[float, ...]  # arrival -> start of synthesis, per started job, in start order
    drain_s: float | None  # finite arrivals, all done: last completion - first arrival
    end_s: float
    cost: float  # dollars
    audio_s: float  # produced
    changes: tuple[Change, ...]
    samples: tuple[Sample, ...]

    def wait_percentile(self, q: float) -> float:
        """Nearest-rank percentile of the waits (0 without jobs)."""
        ordered = sorted(self.waits)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else 0.0

    @property
    def wait_p50_s(self) -> float:
        return self.wait_percentile(50)

    @property
    def wait_p95_s(self) -> float:
        return self.wait_percentile(95)

    @property
    def wait_p99_s(self) -> float:
        return self.wait_percentile(99)

    @property
    def cost_per_audio_hour(self) -> float | None:
        return self.cost / (self.audio_s / 3600) if self.audio_s > 0 else None

    @property
    def scaling_changes(self) -> int:
        return len(self.changes)

    @property
    def pods_max(self) -> int:
        return max((s.pods for s in self.samples), default=0)

    def summary(self) -> dict[str, Any]:
        """The numbers, for --json."""
        return {
            "scenario": self.scenario.describe(),
            "gpu": {
                "name": self.scenario.gpu.name,
                "rtf": self.scenario.gpu.rtf,
                "price": self.scenario.gpu.price_per_hour,
            },
            "duration_s": self.scenario.duration_s,
            "end_s": self.end_s,
            "jobs": self.jobs,
            "completed": self.completed,
            "wait_s": {
                "p50": self.wait_p50_s,
                "p95": self.wait_p95_s,
                "p99": self.wait_p99_s,
                "max": max(self.waits, default=0.0),
            },
            "drain_s": self.drain_s,
            "pods_max": self.pods_max,
            "scaling_changes": self.scaling_changes,
            "cost": round(self.cost, 4),
            "audio_s": round(self.audio_s, 1),
            "cost_per_audio_hour": None if self.cost_per_audio_hour is None else round(self.cost_per_audio_hour, 4),
            "decisions": len(self.samples),
            "aws": self.aws_load(),
        }

    def aws_load(self) -> dict[str, Any]:
        """What AWS sees at the mean job rate on the largest fleet (`consumer.fleet.requests`, records in
        DynamoDB as the template deploys them)."""
        rate = self.jobs / self.scenario.duration_s if self.scenario.duration_s > 0 else 0.0
        if rate <= 0:
            return {"jobs_per_s": 0.0, "usd_per_million_jobs": None, "requests_per_s": {}}
        load = Load(rate, max(1, self.pods_max), "dynamodb")
        return {
            "jobs_per_s": round(rate, 3),
            "usd_per_million_jobs": round(load.usd_per_million_jobs(), 2),
            "requests_per_s": {name: round(value, 2) for name, value, _ in load.rows()},
        }


# --- the simulation -------------------------------------------------------------------------------------------------
DONE, READY, ARRIVAL, TICK = range(4)  # at the same instant: completions first, the decision last


@dataclass
class _Job:
    arrival: float
    audio_s: float
    started: float | None = None
    done: float | None = None


@dataclass
class _Pod:
    pod_id: str
    created: float
    ready: bool = False
    job: _Job | None = None
    stopping: bool = False
    stopped: float | None = None

    def snapshot(self) -> Pod:
        state: PodState = "stopping" if self.stopping else "running" if self.ready else "starting"
        return Pod(self.pod_id, state, self.created, busy=self.job is not None)


class _Simulation:
    def __init__(self, scenario: Scenario, policy: Policy) -> None:
        self.scenario, self.policy = scenario, policy
        self.jobs = [_Job(t, audio) for t, audio in scenario.jobs()]
        self.events: list[tuple[float, int, int, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.over = False
        self.waiting: deque[_Job] = deque()
        self.pods: list[_Pod] = []  # every pod ever created (billing)
        self.active: list[_Pod] = []  # not stopped yet: starting, running, finishing a job
        self.state = PolicyState()
        self.arrivals_left = len(self.jobs)
        self.started_since_tick: list[float] = []
        # the rate: completions and ready pod-seconds per interval, kept while jobs waited throughout
        self.completions = 0
        self.pod_seconds = 0.0
        self.was_saturated = False
        self.rate_samples: deque[tuple[int, float]] = deque(maxlen=RATE_WINDOW)
        self.changes: list[Change] = []
        self.samples: list[Sample] = []

    def push(self, at: float, kind: int, ref: Any = None) -> None:
        heapq.heappush(self.events, (at, kind, self.seq, ref))
        self.seq += 1

    def run(self) -> Result:
        for job in self.jobs:
            self.push(job.arrival, ARRIVAL, job)
        self.push(0.0, TICK)
        handlers: dict[int, Callable[[Any], None]] = {
            DONE: self.on_done,
            READY: self.on_ready,
            ARRIVAL: self.on_arrival,
            TICK: self.on_tick,
        }
        while self.events and not self.over:
            at, kind, _, ref = heapq.heappop(self.events)
            self.advance(at)
            handlers[kind](ref)
        return self.result()

    def advance(self, to: float) -> None:
        self.pod_seconds += sum(1 for p in self.active if p.ready) * (to - self.now)
        self.now = to

    # --- jobs and pods
    def on_arrival(self, job: _Job) -> None:
        self.arrivals_left -= 1
        self.waiting.append(job)
        self.dispatch()

    def on_ready(self, pod: _Pod) -> None:
        if pod.stopped is None:
            pod.ready = True
            self.dispatch()

    def on_done(self, pod: _Pod) -> None:
        assert pod.job is not None
        pod.job.done, pod.job = self.now, None
        self.completions += 1
        if pod.stopping:
            self.retire(pod)
        else:
            self.dispatch()

    def dispatch(self) -> None:
        """Waiting jobs to idle running pods, oldest pod first."""
        for pod in self.active:
            if not self.waiting:
                return
            if pod.ready and pod.job is None and not pod.stopping:
                job = self.waiting.popleft()
                job.started, pod.job = self.now, job
                self.started_since_tick.append(self.now - job.arrival)
                self.push(self.now + self.scenario.service_s(job.audio_s), DONE, pod)

    def retire(self, pod: _Pod) -> None:
        pod.stopped = self.now
        self.active.remove(pod)

    def live(self) -> list[_Pod]:
        """What the provider reports as the fleet: starting and running pods, not stopping ones."""
        return [p for p in self.active if not p.stopping]

    # --- the controller
    def on_tick(self, _: Any) -> None:
        seen = self.observe()
        decision, self.state = fleet_policy.decide(self.policy, seen, self.state)
        if decision.action == "up":
            self.start(decision.desired - decision.current)
        elif decision.action == "down":
            self.stop(decision.current - decision.desired)
        if decision.action != "hold":
            self.changes.append(Change(self.now, decision.action, decision.current, decision.desired, decision.reason))
        self.record()
        self.over = self.finished()
        if not self.over:
            self.push(self.now + self.scenario.interval_s, TICK)

    def observe(self) -> Observation:
        in_flight = sum(1 for p in self.active if p.job is not None)
        live = self.live()
        active = self.completions > 0 or bool(self.started_since_tick)  # read before measure() resets them
        return Observation(self.now, len(self.waiting), in_flight, 0, len(live), self.measure(live), active=active)

    def measure(self, live: list[_Pod]) -> float | None:
        """Completions per ready pod-second over the last intervals in which jobs waited throughout; None until
        there was one."""
        saturated = bool(self.waiting) and any(p.ready for p in live)
        if saturated and self.was_saturated and self.pod_seconds > 0:
            self.rate_samples.append((self.completions, self.pod_seconds))
        self.completions, self.pod_seconds, self.was_saturated = 0, 0.0, saturated
        done = sum(c for c, _ in self.rate_samples)
        seconds = sum(s for _, s in self.rate_samples)
        return done / seconds if done and seconds > 0 else None

    def start(self, count: int) -> None:
        for _ in range(count):
            pod = _Pod(f"sim-{len(self.pods) + 1}", self.now)
            self.pods.append(pod)
            self.active.append(pod)
            self.push(self.now + self.scenario.startup_s, READY, pod)

    def stop(self, count: int) -> None:
        """The controller's choice (starting, then idle, then the youngest); a busy pod finishes its job first."""
        by_id = {p.pod_id: p for p in self.live()}
        for chosen in pick_to_stop([p.snapshot() for p in by_id.values()], count):
            pod = by_id[chosen.pod_id]
            if pod.job is None:
                self.retire(pod)
            else:
                pod.stopping = True

    def record(self) -> None:
        live = self.live()
        wait = max(self.started_since_tick) if self.started_since_tick else None
        self.started_since_tick = []
        in_flight = sum(1 for p in self.active if p.job is not None)
        ready = sum(1 for p in live if p.ready)
        self.samples.append(Sample(self.now, len(self.waiting), in_flight, len(live), ready, wait))

    def finished(self) -> bool:
        """Arrivals over, the queue drained and the fleet back at min_pods (or the tail ran out)."""
        if self.now >= self.scenario.duration_s + self.scenario.tail_s:
            return True
        if self.now < self.scenario.duration_s or self.arrivals_left or self.waiting:
            return False
        live = self.live()
        idle = all(p.job is None for p in self.active)
        return idle and len(live) == self.policy.min_pods and all(p.ready for p in live)

    def result(self) -> Result:
        started = sorted((j for j in self.jobs if j.started is not None), key=lambda j: j.started or 0.0)
        done = [j for j in self.jobs if j.done is not None]
        drain = None
        if self.scenario.arrivals.finite and self.jobs and len(done) == len(self.jobs):
            drain = max(j.done or 0.0 for j in done) - self.jobs[0].arrival
        pod_seconds = sum((self.now if p.stopped is None else p.stopped) - p.created for p in self.pods)
        return Result(
            scenario=self.scenario,
            policy=self.policy,
            jobs=len(self.jobs),
            completed=len(done),
            waits=tuple((j.started or 0.0) - j.arrival for j in started),
            drain_s=drain,
            end_s=self.now,
            cost=pod_seconds * self.scenario.gpu.price_per_hour / 3600,
            audio_s=sum(j.audio_s for j in done),
            changes=tuple(self.changes),
            samples=tuple(self.samples),
        )


def simulate(scenario: Scenario, policy: Policy) -> Result:
    """Run `scenario` under `policy`, deciding with `consumer.fleet.policy.decide` every interval."""
    return _Simulation(scenario, policy).run()


# --- the plot -------------------------------------------------------------------------------------------------------
def plot(result: Result, path: Path) -> Path:
    """One PNG: backlog, pods and wait over time (one shared axis), titled with the p95 wait and the cost."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    samples = result.samples
    hours = result.end_s > 3 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    t = [s.t / scale for s in samples]
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    backlog, pods, wait = figure.subplots(3, 1, sharex=True)
    backlog.fill_between(t, [s.waiting for s in samples], step="post", alpha=0.4, label="waiting")
    backlog.step(t, [s.in_flight for s in samples], where="post", label="in flight")
    backlog.set_ylabel("jobs")
    backlog.legend(loc="upper right", ncols=2)
    pods.step(t, [s.pods for s in samples], where="post", label="pods (starting + running)")
    pods.step(t, [s.ready for s in samples], where="post", linestyle="--", label="running")
    pods.axhline(result.policy.max_pods, color="grey", linewidth=0.8, linestyle=":", label="max pods")
    pods.set_ylim(-0.3, max(result.policy.max_pods, result.pods_max) + 1)
    pods.set_ylabel("pods")
    pods.legend(loc="upper center", ncols=3)
    waited = [(s.t / scale, s.wait_s) for s in samples if s.wait_s is not None]
    wait.plot([x for x, _ in waited], [y for _, y in waited], ".", markersize=3, label="longest wait of jobs started")
    wait.axhline(result.wait_p95_s, color="red", linewidth=0.8, label=f"p95 {result.wait_p95_s:.0f} s")
    wait.set_ylabel("wait (s)")
    wait.set_xlabel(f"time ({unit})")
    wait.legend(loc="upper right", ncols=2)
    figure.suptitle(_title(result))
    figure.savefig(path, format="png", dpi=100)
    return path


def _title(result: Result) -> str:
    per_hour = result.cost_per_audio_hour
    cost = "no audio" if per_hour is None else f"${per_hour:.2f} per hour of audio"
    return f"{result.scenario.describe()}: p95 wait {result.wait_p95_s:.0f} s, {cost}"
