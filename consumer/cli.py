"""The `f5-worker` command line. Producer-side commands must start fast: heavy modules (torch, the engine,
moto) are imported inside the commands that need them."""

from __future__ import annotations

import time

_PROCESS_START = time.monotonic()

from pathlib import Path  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402

from consumer.producer import cli as cli_producer  # noqa: E402

app = typer.Typer(
    name="f5-worker",
    help="F5-TTS behind SQS: synthesis requests in, audio in S3, completion events out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def run() -> None:
    """Run the worker: poll the queue (F5_WORKER_* settings) until SIGTERM."""
    from pydantic import ValidationError

    from consumer.core.settings import Settings
    from consumer.worker.process import run_worker

    try:
        settings = Settings()
    except ValidationError as exc:
        typer.echo(f"invalid settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    raise typer.Exit(run_worker(settings, process_start=_PROCESS_START))


@app.command()
def local(
    text: Annotated[str | None, typer.Option(help="Text to synthesize.")] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(help="Real F5-TTS weights (.safetensors/.pt); default: F5_WORKER_CHECKPOINT."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also save the audio here.")] = Path("f5-worker-demo.wav"),
) -> None:
    """Run everything on this machine: embedded AWS (moto), the worker, one sample request."""
    from consumer.ops.local import DEMO_TEXT, run_local

    raise typer.Exit(run_local(text or DEMO_TEXT, checkpoint, output))


@app.command()
def check(
    port: Annotated[int, typer.Option(envvar="F5_WORKER_HEALTH_PORT", help="Health port of the worker.")] = 8080,
    path: Annotated[str, typer.Option(help="/healthz (liveness) or /readyz.")] = "/healthz",
) -> None:
    """Exit 0 when the worker on this machine is healthy, 1 otherwise (Docker HEALTHCHECK)."""
    from consumer.worker.health import check as health_check

    raise typer.Exit(0 if health_check(port, path) else 1)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def init(ctx: typer.Context) -> None:
    """Create the queue, DLQ, bucket and topic (idempotent); print the F5_WORKER_* settings. --help for options."""
    from consumer.ops.init import init_main

    raise typer.Exit(init_main(ctx.args))


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def infra(ctx: typer.Context) -> None:
    """Write (or --check) the CloudFormation template generated from the resource spec. --help for options."""
    from consumer.ops.infra import main as infra_main

    raise typer.Exit(infra_main(ctx.args))


cli_producer.register(app)


def main() -> None:
    app(prog_name="f5-worker")


if __name__ == "__main__":
    main()
