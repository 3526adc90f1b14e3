"""`f5-worker scale`: the fleet controller, `--dry-run`, and `scale simulate`. Only typer is imported here; the
controller's modules load when the command runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

scale_app = typer.Typer(
    help="Size the fleet of workers from the queue (docs/scaling.md).",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


@scale_app.callback(invoke_without_command=True)
def scale(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option(help="F5_WORKER_FLEET_PROVIDER: local or runpod")] = None,
    min_pods: Annotated[int | None, typer.Option(help="F5_WORKER_FLEET_MIN_PODS")] = None,
    max_pods: Annotated[int | None, typer.Option(help="F5_WORKER_FLEET_MAX_PODS")] = None,
    target_drain_s: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_TARGET_DRAIN_S")] = None,
    interval_s: Annotated[float | None, typer.Option(help="F5_WORKER_FLEET_INTERVAL_S")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Observe and decide, print each decision; change nothing, no lease.")
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="One decision, then exit.")] = False,
    metrics_port: Annotated[int | None, typer.Option(help="Serve the f5_worker_fleet_* metrics on this port.")] = None,
    stop_workers: Annotated[
        bool, typer.Option("--stop-workers", help="On exit, stop the workers too (default: a successor adopts them).")
    ] = False,
) -> None:
    """Every interval: read the queue and the fleet, decide (up at once; down one worker at a time once the
    queue has been empty for a while), start or stop workers. One controller at a time (an S3 lease)."""
    if ctx.invoked_subcommand is not None:
        return
    from consumer.fleet.run import run_scale

    given: dict[str, Any] = {
        "fleet_provider": provider,
        "fleet_min_pods": min_pods,
        "fleet_max_pods": max_pods,
        "fleet_target_drain_s": target_drain_s,
        "fleet_interval_s": interval_s,
    }
    raise typer.Exit(run_scale(given, dry_run=dry_run, once=once, metrics_port=metrics_port, stop_workers=stop_workers))


def register(app: typer.Typer) -> None:
    from consumer.fleet.simulate_cli import register as register_simulate

    register_simulate(scale_app)
    app.add_typer(scale_app, name="scale")
