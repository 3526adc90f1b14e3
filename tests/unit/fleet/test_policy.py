"""The scaling policy alone: up at once, down one at a time after the queue stayed empty and a cooldown passed,
the change budget, the cost cap, no flapping under an oscillating load, and bad policies refused."""

from __future__ import annotations

import itertools
import math

import pytest

from consumer.fleet.policy import Observation, Policy, PolicyState, decide, needed_pods

POLICY = Policy(min_pods=0, max_pods=4, target_drain_s=60, fallback_rate_per_pod=0.5, cooldown_s=30, empty_window_s=60)


def _seen(now: float, visible: int, pods: int, in_flight: int = 0, rate: float | None = None) -> Observation:
    return Observation(now=now, visible=visible, in_flight=in_flight, delayed=0, pods=pods, rate_per_pod=rate)


def test_needed_pods_drain_the_backlog_in_the_target_time() -> None:
    assert needed_pods(0, 0.5, 60) == 0
    assert needed_pods(30, 0.5, 60) == 1 and needed_pods(31, 0.5, 60) == 2
    assert needed_pods(200, 0.5, 60) == math.ceil(200 / 30)


def test_scale_up_is_at_once_and_clamped_to_max() -> None:
    decision, state = decide(POLICY, _seen(0, 200, 0), PolicyState())
    assert (decision.action, decision.current, decision.desired, decision.needed) == ("up", 0, 4, 7)
    assert state.last_change_at == 0 and len(state.changes) == 4


def test_a_measured_rate_replaces_the_fallback() -> None:
    decision, _ = decide(POLICY, _seen(0, 60, 0, rate=1.0), PolicyState())
    assert decision.desired == 1 and decision.rate_per_pod == 1.0  # 60 jobs at 1/s per pod drain in 60 s


def test_scale_down_waits_for_an_empty_window_then_a_cooldown_then_goes_one_at_a_time() -> None:
    state = PolicyState(last_change_at=0.0)
    decisions = []
    for now in range(0, 400, 10):
        busy = now < 100
        pods = 4 - sum(1 for d in decisions if d.action == "down")
        decision, state = decide(POLICY, _seen(float(now), 0, pods, in_flight=pods if busy else 0), state)
        decisions.append(decision)
    downs = [(i * 10, d.desired) for i, d in enumerate(decisions) if d.action == "down"]
    assert downs[0][0] >= 100 + POLICY.empty_window_s  # not while jobs run, and only after the window
    assert [desired for _, desired in downs] == [3, 2, 1, 0]  # one at a time, down to min
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(downs)]
    assert all(gap >= POLICY.cooldown_s for gap in gaps), gaps


def test_a_trickle_lets_the_fleet_shrink_to_what_it_holds() -> None:
    """Nothing waits and the jobs in flight fit on fewer pods: the fleet shrinks while they run."""
    state = PolicyState(last_change_at=0.0)
    pods = 4
    for now in range(0, 1200, 15):
        decision, state = decide(POLICY, _seen(float(now), 0, pods, in_flight=1), state)
        pods = decision.desired
    assert pods == 1  # down to the one pod the job in flight needs, not below it


def test_the_last_pod_stays_while_jobs_come_and_go_between_two_looks() -> None:
    policy = Policy(min_pods=0, max_pods=2, cooldown_s=0, empty_window_s=0)
    busy = Observation(now=100, visible=0, in_flight=0, delayed=0, pods=1, active=True)
    decision, _ = decide(policy, busy, PolicyState())
    assert decision.action == "hold" and "the last pod stays" in decision.reason
    idle = Observation(now=100, visible=0, in_flight=0, delayed=0, pods=1, active=False)
    decision, _ = decide(policy, idle, PolicyState())
    assert (decision.action, decision.desired) == ("down", 0)


def test_min_pods_is_kept_and_restored() -> None:
    policy = Policy(min_pods=1, max_pods=3, cooldown_s=0, empty_window_s=0)
    decision, _ = decide(policy, _seen(0, 0, 0), PolicyState())
    assert (decision.action, decision.desired) == ("up", 1)
    decision, _ = decide(policy, _seen(100, 0, 1), PolicyState())
    assert decision.action == "hold"


def test_the_change_budget_caps_pods_started_per_minute() -> None:
    policy = Policy(max_pods=10, fallback_rate_per_pod=0.01, target_drain_s=60, max_changes_per_minute=3)
    decision, state = decide(policy, _seen(0, 1000, 0), PolicyState())
    assert decision.desired == 3
    decision, state = decide(policy, _seen(30, 1000, 3), state)
    assert decision.action == "hold" and "changes already" in decision.reason
    decision, _ = decide(policy, _seen(61, 1000, 3), state)
    assert (decision.action, decision.desired) == ("up", 6)


def test_the_dollar_cap_limits_the_fleet_and_brings_it_down() -> None:
    policy = Policy(max_pods=10, price_per_pod_hour=0.7, max_dollars_per_hour=2.0, max_changes_per_minute=10)
    decision, _ = decide(policy, _seen(0, 10_000, 0), PolicyState())
    assert decision.desired == 2  # $2/h at $0.70 per pod-hour
    decision, _ = decide(policy, _seen(0, 10_000, 5), PolicyState())
    assert (decision.action, decision.desired) == ("down", 2)


def test_an_oscillating_load_does_not_make_the_fleet_flap() -> None:
    """Bursts every 90 s for two hours (shorter than the empty window plus the cooldown): the fleet scales up once
    and stays; a flapping policy would add and remove pods with every burst."""
    policy = Policy(max_pods=4, target_drain_s=60, fallback_rate_per_pod=0.5, cooldown_s=120, empty_window_s=300)
    state, pods, changes, reversals, last = PolicyState(), 0, 0, 0, None
    for now in range(0, 7200, 15):
        phase = now % 90
        visible = 100 if phase < 30 else 0
        in_flight = min(pods, 4) if phase < 60 else 0
        decision, state = decide(policy, _seen(float(now), visible, pods, in_flight=in_flight), state)
        if decision.action != "hold":
            changes += abs(decision.desired - pods)
            reversals += int(last is not None and last != decision.action)
            last = decision.action
            pods = decision.desired
    assert reversals == 0 and changes == 4, (reversals, changes)


def test_an_oscillation_slower_than_the_window_changes_at_most_once_per_cycle() -> None:
    policy = Policy(max_pods=4, target_drain_s=60, fallback_rate_per_pod=0.5, cooldown_s=60, empty_window_s=120)
    state, pods, reversals, last = PolicyState(), 0, 0, None
    cycle = 1200  # 10 minutes of load, 10 minutes idle
    for now in range(0, 4 * cycle, 15):
        visible = 200 if now % cycle < cycle // 2 else 0
        decision, state = decide(policy, _seen(float(now), visible, pods), state)
        if decision.action != "hold":
            reversals += int(last is not None and last != decision.action)
            last = decision.action
            pods = decision.desired
    assert reversals <= 2 * 4 - 1  # one up and one down phase per cycle, no back-and-forth within one


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"min_pods": 5, "max_pods": 4}, "min_pods 5 and max_pods 4"),
        ({"fallback_rate_per_pod": 0}, "fallback_rate_per_pod 0"),
        ({"cooldown_s": -1}, "cooldown_s -1"),
        ({"target_drain_s": 0}, "target_drain_s 0"),
    ],
)
def test_a_policy_that_cannot_work_is_refused(fields: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Policy(**fields)
