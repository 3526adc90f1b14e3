"""Helpers every producer command shares: settings, the client, output as text or JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def settings():
    """The settings from F5_WORKER_*; a bad one is a ConfigurationError (the CLI prints cause and fix, exit 2)."""
    from consumer.core.settings import load_settings

    return load_settings()


def require(value: str | None, name: str) -> str:
    if not value:
        typer.echo(f"set F5_WORKER_{name.upper()} (see docs/settings.md)", err=True)
        raise typer.Exit(2)
    return value


def client():
    from consumer.aws.clients import make_clients
    from consumer.producer.client import Client
    from consumer.storage.record_backends import records_for

    s = settings()
    aws = make_clients(s)
    return Client(
        aws,
        require(s.queue_url, "queue_url"),
        require(s.bucket, "bucket"),
        jobs_prefix=s.jobs_prefix,
        events_queue_url=s.events_queue_url,
        jobs_index_prefix=s.jobs_index_prefix,
        records=records_for(aws, s),
    ), s


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(text if text is not None else json.dumps(data, indent=2, default=str))
