"""The `f5-worker` command line. Producer-side commands must start fast: heavy modules (torch, the engine,
moto) are imported inside the commands that need them."""

from __future__ import annotations

import time

_PROCESS_START = time.monotonic()

from pathlib import Path  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402

from consumer.api import cli as cli_api  # noqa: E402
from consumer.fleet import cli as cli_fleet  # noqa: E402
from consumer.ops import cli as cli_ops  # noqa: E402
from consumer.producer import cli as cli_producer  # noqa: E402

app = typer.Typer(
    name="f5-worker",
    help="F5-TTS behind SQS: synthesis requests in, audio in S3, completion events out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: flags shown as flags (typer's rich panels print `--json <bool>`)
    context_settings={"help_option_names": ["-h", "--help"]},  # every subcommand's context inherits it
    add_completion=True,  # --install-completion / --show-completion: commands and options complete in the shell
)
_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"f5-worker {version('f5-worker')}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for every error.")] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """F5-TTS behind SQS: synthesis requests in, audio in S3, completion events out.

    Exit codes: 0 done; 1 the work failed (a job failed, a check is unhealthy); 2 a usage or configuration
    mistake (the message names the cause and the fix). Tracebacks only for bugs, or with --debug."""
    _DEBUG["on"] = debug


@app.command()
def run(
    queue_url: Annotated[str | None, typer.Option(help="F5_WORKER_QUEUE_URL")] = None,
    bucket: Annotated[str | None, typer.Option(help="F5_WORKER_BUCKET")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="F5_WORKER_MODEL_DIR")] = None,
    max_in_flight: Annotated[str | None, typer.Option(help="F5_WORKER_MAX_IN_FLIGHT: auto or a number")] = None,
    burst: Annotated[bool | None, typer.Option("--burst/--no-burst", help="F5_WORKER_BURST")] = None,
    health_port: Annotated[int | None, typer.Option(help="F5_WORKER_HEALTH_PORT")] = None,
) -> None:
    """Run the worker: poll the queue until SIGTERM. Every setting is an F5_WORKER_* variable (all of them:
    docs/settings.md); the options override the ones people change most."""
    from consumer.core.settings import load_settings
    from consumer.worker.preflight import preflight

    given: dict[str, Any] = {
        "queue_url": queue_url,
        "bucket": bucket,
        "model_dir": model_dir,
        "max_in_flight": max_in_flight,
        "burst": burst,
        "health_port": health_port,
    }
    settings = load_settings(**{name: value for name, value in given.items() if value is not None})
    preflight(settings)  # seconds, before the engine's modules and the model are loaded
    from consumer.worker.process import run_worker

    raise typer.Exit(run_worker(settings, process_start=_PROCESS_START, checked=True))


@app.command()
def local(
    text: Annotated[str | None, typer.Option(help="Text to synthesize.")] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(help="Real F5-TTS weights (.safetensors/.pt); default: F5_WORKER_CHECKPOINT."),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also save the audio here.")] = Path("f5-worker-demo.wav"),
    serve: Annotated[
        bool, typer.Option("--serve", help="Keep the embedded AWS and a worker running until Ctrl-C.")
    ] = False,
    env_file: Annotated[Path, typer.Option(help="With --serve: write the settings other terminals need here.")] = Path(
        "f5-worker.env"
    ),
) -> None:
    """Run everything on this machine: embedded AWS (moto), the worker, one sample request (--serve: and keep
    serving, for the CLI and the Python client in another terminal)."""
    from consumer.ops.local import DEMO_TEXT, run_local

    if text is not None and not text.strip():
        typer.echo(
            "f5-worker: --text is empty\n  fix: give the text to speak, or leave --text out for the demo", err=True
        )
        raise typer.Exit(2)
    raise typer.Exit(run_local(text or DEMO_TEXT, checkpoint, output, serve=serve, env_file=env_file))


@app.command()
def check(
    port: Annotated[int, typer.Option(envvar="F5_WORKER_HEALTH_PORT", help="Health port of the worker.")] = 8080,
    host: Annotated[
        str, typer.Option(envvar="F5_WORKER_HEALTH_HOST", help="Address it listens on (0.0.0.0: checked on loopback).")
    ] = "127.0.0.1",
    path: Annotated[
        str | None, typer.Option(help="Only this endpoint: /healthz (liveness) or /readyz. Default: both.")
    ] = None,
) -> None:
    """Exit 0 when the worker on this machine is ready (model loaded, AWS answered) and alive (polled the queue
    recently); 1 otherwise, with one line saying why (Docker HEALTHCHECK: unhealthy until ready). It sends
    F5_WORKER_HEALTH_TOKEN, when set, as a bearer token (read from the environment only: never an argument)."""
    import os

    address = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)  # noqa: S104
    token = os.environ.get("F5_WORKER_HEALTH_TOKEN") or None
    for checked in [path] if path else ["/readyz", "/healthz"]:
        url = f"http://{address}:{port}{checked}"
        problem = _health_problem(url, token)
        if problem:
            typer.echo(f"f5-worker check: {url}: {problem}", err=True)
            raise typer.Exit(1)


def _health_problem(url: str, token: str | None = None, timeout_s: float = 3.0) -> str | None:
    """Why the worker's health endpoint at `url` is not healthy; None when it answers 200."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (http:// to the worker's host)
            return None if response.status == 200 else f"answered {response.status}"
    except urllib.error.HTTPError as exc:  # /healthz 503: no queue poll for too long; /readyz 503: still starting
        return f"answered {exc.code}: {exc.read().decode(errors='replace').strip()}"
    except OSError as exc:
        return (
            f"no answer ({getattr(exc, 'reason', exc)}): no `f5-worker run` on this machine, or its health port is "
            "not this one (--port / F5_WORKER_HEALTH_PORT)"
        )


cli_ops.register(app)
cli_producer.register(app)
cli_api.register(app)
cli_fleet.register(app)


def main() -> None:
    from consumer.core.errors import ConfigurationError

    try:
        app(prog_name="f5-worker")
    except Exception as exc:
        mistake = exc if isinstance(exc, ConfigurationError) else _users_mistake(exc)
        if mistake is None or _DEBUG["on"]:
            raise
        # a user's mistake: the cause and the fix, no traceback (--debug shows it)
        typer.echo(f"f5-worker: {mistake}\n  fix: {mistake.fix}", err=True)
        raise SystemExit(mistake.exit_code) from None


def _users_mistake(exc: Exception):
    """AWS errors that come from the configuration (credentials, endpoint, names), as a ConfigurationError."""
    from botocore.exceptions import BotoCoreError, ClientError

    if not isinstance(exc, BotoCoreError | ClientError):
        return None
    from consumer.aws.failures import explain_aws_failure
    from consumer.core.settings import Settings

    try:
        settings = Settings()
    except ValueError:
        settings = Settings.model_construct()
    return explain_aws_failure(exc, settings)


if __name__ == "__main__":
    main()
