"""`f5-worker scale simulate`: the fleet policy (F5_WORKER_FLEET_* and the flags below) against a simulated load;
prints the waits, the fleet's size and the cost, optionally a plot. Only typer is imported at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from consumer.fleet.simulate import Result


def register(app: typer.Typer) -> None:
    """Add `simulate` to `app` (the `scale` group)."""
    app.command("simulate")(simulate_command)


def simulate_command(
    arrivals: Annotated[
        str,
        typer.Option(
            help="constant:RATE (jobs/s), burst:COUNT@AT[,COUNT@AT...], daily:PEAK[,PERIOD_S] (jobs/s at noon, "
            "none at night) or csv:PATH (arrival times, seconds or ISO); several joined with +"
        ),
    ] = "constant:0.2",
    duration_s: Annotated[
        float | None, typer.Option(help="Arrivals stop here (default: an hour, or past the last burst)")
    ] = None,
    gpu: Annotated[str, typer.Option(help="RTX 4090, A100 80GB, H100 or CPU (planning defaults)")] = "RTX 4090",
    rtf: Annotated[float | None, typer.Option(help="Real-time factor: seconds of compute per second of audio")] = None,
    price: Annotated[float | None, typer.Option(help="Dollars per pod-hour")] = None,
    startup_s: Annotated[float, typer.Option(help="Pod created to first poll, seconds")] = 90.0,
    audio_s: Annotated[float, typer.Option(help="Mean seconds of audio per job (lognormal)")] = 20.0,
    audio_spread: Annotated[float, typer.Option(help="Sigma of the audio length's logarithm (0: all equal)")] = 0.6,
    overhead_s: Annotated[float, typer.Option(help="Fixed seconds per job besides audio x RTF")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the arrivals and the audio lengths")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG: backlog, pods and wait over time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the numbers as one JSON object")] = False,
    min_pods: Annotated[int | None, typer.Option(help="F5_WORKER_FLEET_MIN_PODS")] = None,
    max_pods: Annotated[int | None, typer.Option(help="F5_WORKER_FLEET_MAX_PODS")] = None,
    target_drain_s: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_TARGET_DRAIN_S")] = None,
    fallback_rate: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_FALLBACK_RATE")] = None,
    cooldown_s: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_COOLDOWN_S")] = None,
    empty_window_s: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_EMPTY_WINDOW_S")] = None,
    interval_s: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_INTERVAL_S")] = None,
) -> None:
    """Run the fleet policy against a simulated load (simulated time, seconds to run): the waits, the fleet's
    size and the cost of serving it. The GPU table holds planning defaults, not measurements: pass --rtf and
    --price for yours."""
    from consumer.fleet import scenario as sc
    from consumer.fleet import simulate as sim
    from consumer.fleet.settings import load_fleet_settings, policy_of

    settings = load_fleet_settings(
        fleet_min_pods=min_pods,
        fleet_max_pods=max_pods,
        fleet_target_drain_s=target_drain_s,
        fleet_fallback_rate=fallback_rate,
        fleet_cooldown_s=cooldown_s,
        fleet_empty_window_s=empty_window_s,
        fleet_interval_s=interval_s,
    )
    load = sc.parse_arrivals(arrivals)
    scenario = sc.Scenario(
        arrivals=load,
        duration_s=sc.default_duration_s(load) if duration_s is None else duration_s,
        gpu=sc.gpu_type(gpu, rtf, price),
        startup_s=startup_s,
        audio=sc.AudioLengths(audio_s, audio_spread),
        overhead_s=overhead_s,
        interval_s=settings.fleet_interval_s,
        seed=seed,
    )
    if plot is not None:
        _check_plot_path(plot)
    result = sim.simulate(scenario, policy_of(settings))
    if plot is not None:
        sim.plot(result, plot)
    typer.echo(json.dumps(result.summary()) if as_json else table(result))
    if plot is not None and not as_json:
        typer.echo(f"plot       {plot}")


def _check_plot_path(path: Path) -> None:
    from consumer.core.errors import ConfigurationError

    if not path.parent.is_dir():
        raise ConfigurationError(f"no directory {path.parent} for the plot (--plot)", "create it or pass another path")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "the plot needs matplotlib, which is not installed (--plot)", "pip install 'f5-worker[fleet]'"
        ) from None


def table(result: Result) -> str:
    """The short table `simulate` prints."""
    s: dict[str, Any] = result.summary()
    gpu, waits = s["gpu"], s["wait_s"]
    drain = "-" if s["drain_s"] is None else f"{s['drain_s']:.0f} s"
    per_hour = "-" if s["cost_per_audio_hour"] is None else f"${s['cost_per_audio_hour']:.3f}"
    rows = [
        ("scenario", f"{s['scenario']} (RTF {gpu['rtf']:g}, ${gpu['price']:g}/h), {s['duration_s']:g} s"),
        ("jobs", f"{s['completed']} of {s['jobs']} done, {s['audio_s'] / 3600:.2f} h of audio"),
        ("wait", f"p50 {waits['p50']:.1f} s   p95 {waits['p95']:.1f} s   p99 {waits['p99']:.1f} s"),
        ("drain", drain),
        ("pods", f"max {s['pods_max']}, {s['scaling_changes']} scaling changes, {s['end_s']:.0f} s simulated"),
        ("cost", f"${s['cost']:.2f}, {per_hour} per hour of audio"),
    ]
    aws = s["aws"]
    if aws["usd_per_million_jobs"] is not None:
        busiest = max(aws["requests_per_s"].items(), key=lambda item: item[1])
        rows.append(
            (
                "aws",
                f"at {aws['jobs_per_s']:g} jobs/s: ${aws['usd_per_million_jobs']:.2f} per million jobs in requests, "
                f"busiest {busiest[0]} {busiest[1]:g}/s",
            )
        )
    return "\n".join(f"{name:<10} {value}" for name, value in rows)
