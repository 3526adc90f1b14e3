"""`f5-worker api`: serve the HTTP door; `f5-worker api keys create NAME`: a new API key."""

from __future__ import annotations

from typing import Annotated

import typer

api_app = typer.Typer(
    help="The HTTP door: OpenAI-compatible speech, jobs and voices, a web console (docs/api.md).",
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
    """Serve the API until Ctrl-C (settings: F5_WORKER_API_*, plus the queue and bucket of the workers)."""
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
    import uvicorn

    from consumer.api.app import create_app
    from consumer.core.logs import configure, get_logger

    configure(settings.log_level, settings.log_json)
    try:
        app = create_app(settings)
    except KeyConfigError as exc:
        raise ConfigurationError(str(exc), "regenerate it with `f5-worker api keys create NAME`") from exc
    mode = "keyless (loopback only)" if not settings.api_key_hashes else f"{len(settings.api_key_hashes)} key(s)"
    get_logger(__name__).info(
        "api_started", url=f"http://{settings.api_host}:{settings.api_port}", auth=mode, queue_url=settings.queue_url
    )
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")


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
