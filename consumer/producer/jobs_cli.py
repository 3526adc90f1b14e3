"""`f5-worker jobs ...`: what the job records say (show, list, wait), and acting on jobs (cancel, download,
redeliver)."""

from __future__ import annotations

import getpass
import json
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from consumer.producer.cli_common import JsonFlag, emit
from consumer.producer.cli_common import client as make_client
from consumer.producer.progress_view import describe, worker_of
from consumer.storage.job_record import Completed, Failed, InProgress, JobRecord, JobStatus, Released

jobs_app = typer.Typer(
    help="Jobs: their records, the recent ones, cancel, download, redeliver.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
STATES = tuple(status.value for status in JobStatus)


def summary(record: JobRecord) -> str:
    """The record's truth in a few lines."""
    lines = [f"job {record.job_id}: {record.status.value} (generation {record.generation})"]
    if isinstance(record, InProgress):
        _, phase = describe(record)
        since = record.started_at or "?"
        lines.append(f"  {phase}; since {since}; claim until {record.expires_at.isoformat()}")
    elif isinstance(record, Released):
        released = record.released
        if released is not None:
            lines.append(
                f"  released by {worker_of(released.by or '?')} at {released.at}: "
                f"{released.reason} ({released.error_code or 'no error'}); queued for another attempt"
            )
        else:
            lines.append("  no worker has started it yet")
    elif isinstance(record, Completed):
        output, timings = record.event.output, record.event.timings
        lines.append(
            f"  {output.uri} ({output.duration_s:.2f} s audio, {timings.synthesis_s:.2f} s synthesis) "
            f"by {worker_of(record.worker_id or '?')} at {record.finished_at}"
        )
    else:
        failure = record.failure
        lines.append(
            f"  {failure.error_code}: {failure.error_message} (attempt {failure.attempt}, at {record.finished_at})"
        )
    if record.cancel is not None:
        lines.append(f"  cancel requested by {record.cancel.by} at {record.cancel.at}")
    if isinstance(record, Completed | Failed) and record.webhook_url and (state := record.delivery.state):
        lines.append(f"  webhook: {state.value} after {record.delivery.count} attempt(s)")
    return "\n".join(lines)


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: JsonFlag = False) -> None:
    """Show what the job's record says: in progress (worker, since, attempt, chunk i of n), completed (its
    event), failed (code, message, generation), and webhook delivery. Exit 1 if no worker has seen the job."""
    client, _ = make_client()
    record = client.record(job_id)
    if record is None:
        typer.echo(
            f"job {job_id} has no record: no worker has received it yet (still queued), or the id is wrong",
            err=True,
        )
        raise typer.Exit(1)
    emit(record.model_dump(mode="json"), as_json, summary(record))


def parse_since(text: str) -> datetime:
    """`30m`, `2h`, `1d` (ago) or an ISO time."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text and text[-1] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: give 30m, 2h, 1d or an ISO time like 2026-12-02T14:00") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@jobs_app.command("list")
def jobs_list(
    state: Annotated[
        str | None, typer.Option("--state", help=f"Only jobs whose latest index entry is one of {', '.join(STATES)}.")
    ] = None,
    since: Annotated[str, typer.Option(help="Window start: 30m, 2h, 1d ago, or an ISO time.")] = "1h",
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Recent jobs from the hourly index: requests grow with the jobs in the window, not with all jobs."""
    if state is not None and state.upper() not in STATES:
        raise typer.BadParameter(f"{state!r}: one of {', '.join(STATES)}", param_hint="--state")
    client, _ = make_client()
    entries = client.recent(parse_since(since), status=state.upper() if state else None, limit=limit)
    rows = [
        {"job_id": e.job_id, "status": e.status, "at": e.at.isoformat(), "error_code": e.error_code} for e in entries
    ]
    text = "\n".join(
        f"{r['at'][:19]}  {r['status']:<10}  {r['job_id']}  {r['error_code'] or ''}".rstrip() for r in rows
    )
    emit(rows, as_json, text or f"no jobs since {since}")


@jobs_app.command("wait")
def jobs_wait(
    job_id: str,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Wait for a job's outcome, showing its phases on stderr. Exit 1 if it failed or did not finish in time."""
    from consumer.producer.progress_view import PhaseReporter
    from contracts.events import SynthesisCompleted

    client, _ = make_client()
    phases = PhaseReporter(sys.stderr)
    try:
        event = client.wait(job_id, timeout_s=timeout, poll_s=0.5, on_record=phases)
    except TimeoutError as exc:
        phases.close()
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    phases.close()
    emit(json.loads(event.model_dump_json()), as_json)
    raise typer.Exit(0 if isinstance(event, SynthesisCompleted) else 1)


@jobs_app.command("download")
def jobs_download(
    job_id: str,
    out: Annotated[Path | None, typer.Option(help="Where to save it (default: the key's file name).")] = None,
) -> None:
    """Save a completed job's audio. Exit 1 if the job has not completed."""
    from contracts.events import SynthesisCompleted

    client, _ = make_client()
    event = client.result(job_id)
    if not isinstance(event, SynthesisCompleted):
        state = "failed" if event is not None else "not completed (see: f5-worker jobs show)"
        typer.echo(f"job {job_id} has no audio: {state}", err=True)
        raise typer.Exit(1)
    path = out or Path(event.output.key.rsplit("/", 1)[-1])
    client.download(event, path)
    typer.echo(f"saved {path} ({event.output.duration_s:.2f} s audio)")


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Recorded with the cancellation and echoed in its event.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Cancel a job: a queued one fails with `cancelled` when a worker receives it (its message deleted, no
    audio); a running one stops at its next sampling step once its worker sees the request (within
    F5_WORKER_PROGRESS_INTERVAL_S). Exit 1 if the job already finished."""
    from consumer.storage.jobs import CancelResult

    client, _ = make_client()
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    result = client.cancel(job_id, by, reason)
    text = {
        CancelResult.QUEUED: f"cancel recorded: {job_id} fails with `cancelled` when a worker receives it",
        CancelResult.RUNNING: f"cancel recorded: {job_id} stops at its next step (f5-worker jobs wait {job_id})",
        CancelResult.FINISHED: f"job {job_id} already finished: nothing to cancel (f5-worker jobs show {job_id})",
    }[result]
    emit({"job_id": job_id, "result": result.value}, as_json, text)
    raise typer.Exit(1 if result == CancelResult.FINISHED else 0)


@jobs_app.command("redeliver")
def jobs_redeliver(job_id: str, as_json: JsonFlag = False) -> None:
    """Send a finished job's event again (SNS and its webhook), e.g. after a receiver's outage (exit 1 if the job
    has no recorded outcome)."""
    from consumer.core.errors import ConfigurationError, WebhookRefused

    client, s = make_client()
    try:
        event = client.redeliver(job_id, allow_private=s.webhook_allow_private)
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    except WebhookRefused as exc:
        raise ConfigurationError(
            f"job {job_id}'s webhook is refused, so nothing was queued: {exc}",
            "redeliver to an allowed address (`jobs show` prints the job's webhook), or publish through SNS only",
        ) from exc
    emit({"job_id": job_id, "event_id": event.event_id, "type": event.type}, as_json, f"queued: {event.event_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
