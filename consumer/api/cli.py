"""`f5-worker api`: serve the HTTP door; `f5-worker api keys create NAME`: a new API key."""

from __future__ import annotations

import os
import signal
import socket
from typing import Annotated, Any

import typer

api_app = typer.Typer(
    help="The HTTP door: OpenAI-compatible speech, jobs and voices, a web console (docs/api.md). A bare "
    "`f5-worker api` starts the server; `f5-worker api keys create NAME` makes an API key.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True, rich_markup_mode=None)
api_app.add_typer(keys_app, name="keys")


@api_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="F5_WORKER_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="F5_WORKER_API_PORT")] = None,
) -> None:
    """Serve the API until Ctrl-C or SIGTERM, then exit 0 (settings: F5_WORKER_API_*, plus the workers' queue and
    bucket, which must answer first). A port in use, or a queue or bucket that does not answer, is exit 2."""
    if ctx.invoked_subcommand is not None:
        return
    from consumer.api.auth import is_loopback
    from consumer.core.errors import ConfigurationError, KeyConfigError
    from consumer.core.settings import load_settings

    overrides = {k: v for k, v in {"api_host": host, "api_port": port}.items() if v is not None}
    settings = load_settings(**overrides)  # flags checked like the variables: a bad one is exit 2, in one line
    if not settings.queue_url or not settings.bucket:
        raise ConfigurationError(
            "the API needs the workers' queue and bucket", "set F5_WORKER_QUEUE_URL and F5_WORKER_BUCKET"
        )
    if not settings.api_key_hashes and not is_loopback(settings.api_host):
        raise ConfigurationError(
            f"no API keys configured, and {settings.api_host} is not a loopback address",
            "create one with `f5-worker api keys create NAME` and set F5_WORKER_API_KEY_HASHES, or listen on 127.0.0.1",
        )
    from consumer.aws.probe import check_aws

    check_aws(settings)  # a wrong endpoint, name or credential: exit 2 now, not on the first request
    with _bind(settings.api_host, settings.api_port) as listener:
        from consumer.api.app import create_app
        from consumer.core.logs import configure, get_logger

        configure(settings.log_level, settings.log_json)
        try:
            app = create_app(settings)
        except KeyConfigError as exc:
            raise ConfigurationError(str(exc), "regenerate it with `f5-worker api keys create NAME`") from exc
        mode = "keyless (loopback only)" if not settings.api_key_hashes else f"{len(settings.api_key_hashes)} key(s)"
        get_logger(__name__).info(
            "api_started",
            url=f"http://{settings.api_host}:{settings.api_port}",
            auth=mode,
            queue_url=settings.queue_url,
        )
        _serve(app, listener)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is a user's mistake in one line (uvicorn would log
    it after `api_started`, and exit 3)."""
    from consumer.core.errors import ConfigurationError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}",
            "stop what uses that port, or pick another with --port / F5_WORKER_API_PORT",
        ) from exc


def _serve(app: Any, listener: socket.socket) -> None:
    """uvicorn on `listener` until SIGTERM or Ctrl-C; both shut it down gracefully and the command exits 0."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    # uvicorn catches SIGTERM, shuts down gracefully, restores the handler it found and raises the signal again:
    # the default handler would then kill the process (exit 143); this no-op one lets the command return, exit 0.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:  # the re-raised SIGINT, after the same graceful shutdown
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


@keys_app.command("create")
def create(name: str) -> None:
    """Print a new API key (once: only its hash is kept) and the setting that enables it."""
    from consumer.api.auth import create_key
    from consumer.core.errors import KeyConfigError

    try:
        key, entry = create_key(name)
    except KeyConfigError as exc:
        typer.echo(f"f5-worker: {exc}\n  fix: pick a name like 'team-a'", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"key (shown once; give it to the client): {key}")
    typer.echo(f"add to F5_WORKER_API_KEY_HASHES (comma-separated): {entry}")


def register(app: typer.Typer) -> None:
    app.add_typer(api_app, name="api")
