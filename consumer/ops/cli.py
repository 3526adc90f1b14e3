"""`f5-worker init` and `f5-worker infra`. Only typer is imported here: boto3, pydantic and pyyaml load when a
command runs, so `--help` and shell completion stay fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_NAME = "f5-worker"  # ResourceSpec().name, restated for --help (tests/unit/cli/test_commands.py compares them)
DEFAULT_TEMPLATE = Path("infra/f5-worker.yaml")  # consumer.ops.infra.DEFAULT_OUTPUT, likewise


def init(
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            envvar="F5_WORKER_AWS_ENDPOINT_URL", help="LocalStack/moto URL, e.g. http://localhost:4566; none: AWS."
        ),
    ] = None,
    region: Annotated[str, typer.Option(envvar="F5_WORKER_AWS_REGION", help="AWS region.")] = "us-east-1",
    name: Annotated[str | None, typer.Option(help=f"Resource name prefix (default: {DEFAULT_NAME}).")] = None,
    bucket: Annotated[str | None, typer.Option(help="Bucket name (default: <name>-audio).")] = None,
    fifo: Annotated[bool, typer.Option("--fifo", help="FIFO request queue and DLQ.")] = False,
    max_receive_count: Annotated[
        int | None, typer.Option(help="Receives of a message before the DLQ (default: the resource spec's).")
    ] = None,
    visibility_timeout: Annotated[
        int | None, typer.Option(help="Request queue visibility timeout, seconds (default: the resource spec's).")
    ] = None,
    no_events_queue: Annotated[
        bool, typer.Option("--no-events-queue", help="No SQS queue subscribed to the events topic.")
    ] = False,
    example_voice: Annotated[
        bool,
        typer.Option(
            "--example-voice/--no-example-voice",
            help="Store f5-tts's English example clip as voice basic-en (`say`'s default) unless the library has it.",
        ),
    ] = True,
) -> None:
    """Create (or find) the queue + DLQ, bucket, topic and events queue, and the example voice; print the
    F5_WORKER_* settings (idempotent). Exit 2 when AWS cannot be reached or refuses."""
    from consumer.ops.init import init_resources, make_spec

    spec = make_spec(
        name,
        bucket,
        fifo=fifo,
        max_receive_count=max_receive_count,
        visibility_timeout=visibility_timeout,
        events_queue=not no_events_queue,
    )
    raise typer.Exit(init_resources(spec, endpoint_url, region, example_voice=example_voice))


def infra(
    output: Annotated[Path, typer.Option(help="Where the template goes.")] = DEFAULT_TEMPLATE,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the file differs from the generator.")
    ] = False,
) -> None:
    """Write (or --check) the CloudFormation template generated from the resource spec: queues, DLQ, bucket,
    topic, IAM policies."""
    from consumer.ops.infra import write_template

    raise typer.Exit(write_template(output, check=check))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(infra)


def infra_main() -> None:
    """`python -m consumer.ops.infra`: `f5-worker infra` on its own (infra/README.md, the template's header)."""
    app = typer.Typer(
        add_completion=False, rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]}
    )
    app.command()(infra)
    app(prog_name="python -m consumer.ops.infra")
