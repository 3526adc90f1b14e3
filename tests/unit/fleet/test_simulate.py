"""The fleet simulator (`scale simulate`): a burst grows the fleet and it shrinks back after the empty window, a
light load keeps one pod, a day curve scales to zero at night, an oscillating load does not flap, more pods wait
less and cost more, it decides with the policy's own `decide` once per interval, the plot is a PNG, a seed
repeats a run, and bad input is one line and exit 2. Simulated time only."""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from consumer.core.errors import ConfigurationError
from consumer.fleet import policy as fleet_policy
from consumer.fleet.policy import Policy
from consumer.fleet.scenario import (
    GPU_TYPES,
    AudioLengths,
    Scenario,
    bursts,
    constant,
    daily,
    from_csv,
    gpu_type,
    parse_arrivals,
)
from consumer.fleet.simulate import Result, plot, simulate
from consumer.fleet.simulate_cli import register

POLICY = Policy(min_pods=0, max_pods=4, cooldown_s=120, empty_window_s=300)


def _down_times(result: Result) -> list[float]:
    return [c.t for c in result.changes if c.action == "down"]


def test_a_burst_grows_to_max_drains_and_shrinks_to_min_after_the_empty_window() -> None:
    result = simulate(Scenario(bursts([(0, 200)]), duration_s=1), POLICY)
    assert result.completed == result.jobs == 200
    assert result.pods_max == 4 and result.changes[0].action == "up"
    assert result.samples[-1].pods == POLICY.min_pods == 0
    assert result.drain_s is not None
    downs = _down_times(result)
    assert len(downs) == 4  # one pod at a time
    # Quiet from the first decision that saw nothing waiting and a pod to spare; down only a window later.
    quiet_from = min(x.t for x in result.samples if x.t > 0 and x.waiting == 0 and x.in_flight < 4)
    assert quiet_from <= result.drain_s
    assert downs[0] >= quiet_from + POLICY.empty_window_s
    assert all(b - a >= POLICY.cooldown_s for a, b in itertools.pairwise(downs))
    # 4 pods, each from creation until its stop, at the RTX 4090's price
    assert result.cost == pytest.approx(sum(downs) * GPU_TYPES["RTX 4090"].price_per_hour / 3600)


def test_a_constant_load_below_one_pods_capacity_keeps_one_pod() -> None:
    scenario = Scenario(constant(0.1), duration_s=3600)  # 0.1 job/s x ~2.6 s per job: a quarter of one pod
    kept = simulate(scenario, Policy(min_pods=1, max_pods=4))
    assert {s.pods for s in kept.samples} == {1}
    assert kept.scaling_changes == 1
    # with min 0 it starts one pod for the first job; a quiet spell may stop it, but it never needs two
    scaled = simulate(scenario, Policy(min_pods=0, max_pods=4))
    during = [s.pods for s in scaled.samples if s.t < scenario.duration_s]
    assert max(during) == 1 and during.count(1) >= 0.9 * len(during)


def test_a_day_curve_scales_to_zero_at_night_with_min_zero() -> None:
    day = daily(0.5, period_s=4 * 3600)  # night 0-1 h and 3-5 h, day 1-3 h peaking at 2 h
    result = simulate(Scenario(day, duration_s=5 * 3600), Policy(min_pods=0, max_pods=4))
    assert max(s.pods for s in result.samples if s.t < 3600) == 0  # no jobs before dawn, no pods
    assert min(s.pods for s in result.samples if 1.75 * 3600 <= s.t < 2.25 * 3600) >= 1  # noon
    night = [s.pods for s in result.samples if 3.5 * 3600 <= s.t < 5 * 3600]
    assert night and set(night) == {0}


def test_an_oscillating_load_does_not_flap() -> None:
    """Bursts every 2 x cooldown: the queue never stays empty for the empty window between two bursts, so the
    fleet grows once and only shrinks after the last burst; the change budget and the cooldown hold throughout."""
    policy = Policy(min_pods=0, max_pods=4, cooldown_s=120, empty_window_s=300, max_changes_per_minute=4)
    period = 2 * policy.cooldown_s
    load = bursts([(t, 120) for t in range(0, 7200, int(period))])
    result = simulate(Scenario(load, duration_s=7200), policy)
    last_burst = 7200 - period
    assert all(c.action == "up" for c in result.changes if c.t <= last_burst + policy.empty_window_s)
    assert sum(abs(c.after - c.before) for c in result.changes) <= 2 * policy.max_pods  # up to max, down to min
    for change in result.changes:  # any 60 s: at most max_changes_per_minute pods started or stopped
        window = [c for c in result.changes if change.t <= c.t < change.t + 60]
        assert sum(abs(c.after - c.before) for c in window) <= policy.max_changes_per_minute
    assert all(b - a >= policy.cooldown_s for a, b in itertools.pairwise(_down_times(result)))


def test_more_pods_wait_less_and_cost_more() -> None:
    scenario = Scenario(parse_arrivals("burst:300@0+constant:0.1"), duration_s=3600)
    small, large = (simulate(scenario, Policy(max_pods=n)) for n in (2, 6))
    assert small.jobs == large.jobs  # the same jobs for both
    assert large.pods_max == 6 and small.pods_max == 2
    assert large.wait_p95_s < small.wait_p95_s
    assert large.cost > small.cost


def test_it_decides_with_the_policys_decide_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = fleet_policy.decide

    def counting(policy, seen, state):  # type: ignore[no-untyped-def]
        calls.append(seen.now)
        return real(policy, seen, state)

    monkeypatch.setattr(fleet_policy, "decide", counting)
    scenario = Scenario(bursts([(0, 50)]), duration_s=600, interval_s=20)
    result = simulate(scenario, POLICY)
    assert len(calls) == len(result.samples) > 600 / 20
    assert calls == [i * 20.0 for i in range(len(calls))]


def test_the_policy_sees_the_rate_measured_while_jobs_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    """None until pods worked through a waiting queue, then completions per pod-second: 1 / (audio x RTF +
    overhead) with jobs of equal length."""
    seen: list[tuple[float, float | None]] = []
    real = fleet_policy.decide

    def recording(policy, observation, state):  # type: ignore[no-untyped-def]
        seen.append((observation.now, observation.rate_per_pod))
        return real(policy, observation, state)

    monkeypatch.setattr(fleet_policy, "decide", recording)
    scenario = Scenario(bursts([(0, 400)]), duration_s=1, audio=AudioLengths(20.0, spread=0.0), startup_s=60)
    simulate(scenario, POLICY)
    first = next(now for now, rate in seen if rate is not None)
    assert first == scenario.startup_s + scenario.interval_s  # the first interval the pods worked through
    measured = [rate for _, rate in seen if rate is not None]
    assert measured[-1] == pytest.approx(1 / scenario.service_s(20.0), rel=0.1)


def test_the_plot_is_a_png_matplotlib_reads_back(tmp_path: Path) -> None:
    import matplotlib.image

    result = simulate(Scenario(bursts([(0, 100)]), duration_s=1), POLICY)
    path = plot(result, tmp_path / "fleet.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert width > 500 and height > 500


def test_the_same_seed_gives_the_same_result_and_another_seed_another() -> None:
    def run(seed: int) -> Result:
        return simulate(Scenario(parse_arrivals("constant:0.3+burst:50@600"), duration_s=1800, seed=seed), POLICY)

    assert run(7) == run(7)
    assert run(7).waits != run(8).waits


def test_arrivals_from_a_csv_of_seconds_or_iso_times(tmp_path: Path) -> None:
    seconds = tmp_path / "seconds.csv"
    seconds.write_text("at\n100\n130.5\n\n160\n")
    assert from_csv(seconds).at_s == (0.0, 30.5, 60.0)
    iso = tmp_path / "iso.csv"
    iso.write_text("2024-05-01T10:00:00Z\n2024-05-01T10:01:00+00:00\n2024-05-01T10:00:30\n")
    assert from_csv(iso).at_s == (0.0, 30.0, 60.0)
    result = simulate(Scenario(parse_arrivals(f"csv:{iso}"), duration_s=61), POLICY)
    assert result.completed == 3


def test_a_gpu_types_numbers_can_be_overridden() -> None:
    gpu = gpu_type("rtx 4090", rtf=0.1)
    assert (gpu.name, gpu.rtf, gpu.price_per_hour) == ("RTX 4090", 0.1, GPU_TYPES["RTX 4090"].price_per_hour)
    with pytest.raises(ConfigurationError, match=r"unknown GPU type 'T4'; known: RTX 4090, A100 80GB, H100, CPU"):
        gpu_type("T4")


# --- the command ----------------------------------------------------------------------------------------------------
def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def scale() -> None:
        """The `scale` group."""

    register(app)
    return app


def test_the_command_prints_the_table_json_and_a_plot(tmp_path: Path) -> None:
    args = ["simulate", "--arrivals", "burst:200@0", "--max-pods", "4", "--startup-s", "60"]
    table = CliRunner().invoke(_app(), [*args, "--plot", str(tmp_path / "p.png")])
    assert table.exit_code == 0, table.output
    for label in ("wait", "p95", "drain", "pods       max 4", "per hour of audio", "plot"):
        assert label in table.output
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")
    machine = CliRunner().invoke(_app(), [*args, "--json"])
    summary = json.loads(machine.output)
    assert summary["jobs"] == summary["completed"] == 200 and summary["pods_max"] == 4
    assert summary["wait_s"]["p50"] <= summary["wait_s"]["p95"] <= summary["wait_s"]["p99"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--arrivals", "sometimes:3"], "--arrivals"),
        (["--arrivals", "burst:200at0"], "--arrivals"),
        (["--arrivals", "constant:-1"], "--arrivals"),
        (["--duration-s", "-5"], "--duration-s"),
        (["--gpu", "T4"], "--gpu"),
        (["--min-pods", "5", "--max-pods", "4"], "F5_WORKER_FLEET_MIN_PODS"),
    ],
)
def test_bad_input_is_one_line_naming_the_option_and_exit_2(
    args: list[str], says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI's own handler (consumer.cli.main): the cause in one line, its fix, exit 2."""
    import consumer.cli

    for name in [n for n in os.environ if n.startswith("F5_WORKER_FLEET_")]:
        monkeypatch.delenv(name)
    runner = CliRunner().invoke(_app(), ["simulate", *args])
    assert isinstance(runner.exception, ConfigurationError), runner.output
    monkeypatch.setattr(consumer.cli, "app", _app())
    monkeypatch.setattr(sys, "argv", ["f5-worker", "simulate", *args])
    with pytest.raises(SystemExit) as exited:
        consumer.cli.main()
    assert exited.value.code == 2
    cause, fix = capsys.readouterr().err.strip().splitlines()
    assert cause.startswith("f5-worker: ") and says in (cause + fix), (cause, fix)
    assert fix.startswith("  fix: ")
