"""How many workers the queue needs: one pure function from what was observed to a decision, shared by the
controller (`f5-worker scale`) and the simulator (`f5-worker scale simulate`), so what is planned is what runs.

    backlog  = visible + in flight + delayed
    needed   = ceil(backlog / (rate per pod * target drain time))        rate: jobs per pod per second
    desired  = clamp(needed, min_pods, max_pods, the dollars-per-hour cap)

- Up at once, to `desired`, within `max_changes_per_minute` pods started in any 60 s.
- Down one pod at a time, only when the queue has been quiet (nothing visible or delayed, and no more in flight
  than the remaining pods hold) for `empty_window_s`, and `cooldown_s` after the last change of either kind.
  The last pod goes only if no job started or finished since the previous decision (a trickle that comes and
  goes between two looks would otherwise send the fleet to zero and make the next job wait a start-up). Never
  below `min_pods`; a scale-down is a SIGTERM (the worker finishes or hands back its job).
- What the decision remembers (`PolicyState`) is small and serialisable: the controller keeps it in its S3
  lease, so a successor continues the same cooldowns.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

Action = Literal["up", "down", "hold"]


@dataclass(frozen=True)
class Policy:
    min_pods: int = 0
    max_pods: int = 4
    target_drain_s: float = 300.0  # the backlog should be gone within this
    fallback_rate_per_pod: float = 0.1  # jobs per pod per second, until the fleet's own rate is measured
    cooldown_s: float = 120.0  # after any change, before a scale-down
    empty_window_s: float = 300.0  # the backlog stays empty this long before a scale-down
    max_changes_per_minute: int = 4  # pods started or stopped within any 60 s
    price_per_pod_hour: float = 0.0  # dollars; 0: no cost cap
    max_dollars_per_hour: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.min_pods < 0 or self.max_pods < 1 or self.min_pods > self.max_pods:
            problems.append(f"min_pods {self.min_pods} and max_pods {self.max_pods}: need 0 <= min <= max, max >= 1")
        if self.target_drain_s <= 0:
            problems.append(f"target_drain_s {self.target_drain_s}: must be > 0")
        if self.fallback_rate_per_pod <= 0:
            problems.append(f"fallback_rate_per_pod {self.fallback_rate_per_pod}: must be > 0 (jobs per pod per s)")
        if self.cooldown_s < 0 or self.empty_window_s < 0:
            problems.append(f"cooldown_s {self.cooldown_s}, empty_window_s {self.empty_window_s}: must be >= 0")
        if self.max_changes_per_minute < 1:
            problems.append(f"max_changes_per_minute {self.max_changes_per_minute}: must be >= 1")
        if self.price_per_pod_hour < 0 or (self.max_dollars_per_hour is not None and self.max_dollars_per_hour < 0):
            problems.append("price_per_pod_hour and max_dollars_per_hour must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def cost_cap_pods(self) -> int:
        """The most pods the dollars-per-hour cap allows (max_pods without a cap)."""
        if self.max_dollars_per_hour is None or self.price_per_pod_hour == 0:
            return self.max_pods
        return int(self.max_dollars_per_hour // self.price_per_pod_hour)


@dataclass(frozen=True)
class Observation:
    """What the controller saw at `now` (seconds, any monotonic-enough clock shared with the state)."""

    now: float
    visible: int
    in_flight: int
    delayed: int
    pods: int  # running or starting
    rate_per_pod: float | None = None  # measured jobs per pod per second; None: not measured yet
    oldest_age_s: float | None = None
    active: bool | None = None  # a job started or finished since the previous decision; None: unknown

    @property
    def backlog(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True)
class PolicyState:
    last_change_at: float | None = None
    empty_since: float | None = None  # when the queue last became empty (None: not empty)
    changes: tuple[float, ...] = field(default_factory=tuple)  # when pods were started or stopped (last 60 s)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyState:
        return cls(data.get("last_change_at"), data.get("empty_since"), tuple(data.get("changes", ())))


@dataclass(frozen=True)
class Decision:
    action: Action
    current: int
    desired: int  # what the fleet should become now (after the rate limit)
    needed: int  # what the backlog asks for (before the clamps)
    rate_per_pod: float  # the rate used
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def needed_pods(backlog: int, rate_per_pod: float, target_drain_s: float) -> int:
    return math.ceil(backlog / (rate_per_pod * target_drain_s)) if backlog > 0 else 0


def decide(policy: Policy, seen: Observation, state: PolicyState) -> tuple[Decision, PolicyState]:
    """The decision for `seen`, and the state to remember for the next one."""
    now = seen.now
    rate = seen.rate_per_pod if seen.rate_per_pod and seen.rate_per_pod > 0 else policy.fallback_rate_per_pod
    needed = needed_pods(seen.backlog, rate, policy.target_drain_s)
    ceiling = min(policy.max_pods, policy.cost_cap_pods)
    target = max(policy.min_pods, min(needed, ceiling))
    recent = tuple(t for t in state.changes if now - t < 60.0)
    budget = max(0, policy.max_changes_per_minute - len(recent))
    # Quiet: nothing waits, and one pod fewer still holds every job in flight.
    empty = seen.visible == 0 and seen.delayed == 0 and seen.in_flight <= max(seen.pods - 1, 0)
    empty_since = (state.empty_since if state.empty_since is not None else now) if empty else None
    state = replace(state, empty_since=empty_since, changes=recent)

    def hold(reason: str) -> tuple[Decision, PolicyState]:
        return Decision("hold", seen.pods, seen.pods, needed, rate, reason), state

    if seen.pods > ceiling:  # over max or the cost cap (a changed policy): come down now, within the budget
        step = min(seen.pods - ceiling, budget)
        if step == 0:
            return hold(f"over the ceiling {ceiling}; change budget spent")
        return _change("down", seen.pods - step, seen, needed, rate, f"above the ceiling {ceiling}", state, step)
    if target > seen.pods:
        step = min(target - seen.pods, budget)
        if step == 0:
            return hold(f"needs {target}; {policy.max_changes_per_minute} changes already in the last minute")
        why = f"backlog {seen.backlog} at {rate:.3g} jobs/s per pod drains in {policy.target_drain_s:.0f} s"
        if seen.pods < policy.min_pods:
            why = f"below min_pods {policy.min_pods}"
        return _change("up", seen.pods + step, seen, needed, rate, why, state, step)
    if seen.pods > target:
        if not empty and seen.pods > policy.min_pods:
            return hold(f"backlog {seen.backlog}: the queue is not quiet, no scale-down")
        if empty_since is not None and now - empty_since < policy.empty_window_s:
            return hold(f"empty for {now - empty_since:.0f} s of {policy.empty_window_s:.0f} s")
        if state.last_change_at is not None and now - state.last_change_at < policy.cooldown_s:
            return hold(f"cooldown: {now - state.last_change_at:.0f} s of {policy.cooldown_s:.0f} s since a change")
        if budget == 0:
            return hold("change budget spent")
        if seen.pods == 1 and seen.active:
            return hold("jobs came and went since the last decision: the last pod stays")
        return _change("down", seen.pods - 1, seen, needed, rate, "quiet queue: one pod fewer", state, 1)
    return hold("at the size the backlog needs")


def _change(
    action: Action, desired: int, seen: Observation, needed: int, rate: float, reason: str, state: PolicyState, n: int
) -> tuple[Decision, PolicyState]:
    changes = state.changes + (seen.now,) * n
    return Decision(action, seen.pods, desired, needed, rate, reason), replace(
        state, last_change_at=seen.now, changes=changes
    )
