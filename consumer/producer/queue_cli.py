"""`f5-worker status` and `f5-worker dlq ...`: the queue, its dead letters, recent outcomes and live workers."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from consumer.producer.cli_common import JsonFlag, emit, require, settings

dlq_app = typer.Typer(
    help="The dead-letter queue: what is in it and why, and redrive.", no_args_is_help=True, rich_markup_mode=None
)


def _aws():
    from consumer.aws.clients import make_clients

    s = settings()
    return make_clients(s), s


def _dead_letters(sqs: Any, queue_url: str):
    from consumer.producer.overview import dead_letters

    dlq = dead_letters(sqs, queue_url)
    if dlq is None:
        typer.echo(
            "f5-worker: the queue has no redrive policy, so no DLQ\n  fix: create it with `f5-worker init`", err=True
        )
        raise typer.Exit(2)
    return dlq


def render_status(data: dict[str, Any]) -> str:
    q, dlq, hour = data["queue"], data["dlq"], data["last_hour"]
    age = "unknown (no CloudWatch data)" if q["oldest_age_s"] is None else f"{q['oldest_age_s']:.0f} s"
    lines = [
        f"queue      {q['url']}",
        f"  waiting {q['visible']}   in flight {q['in_flight']}   delayed {q['delayed']}   oldest {age}",
        f"dlq        {'none' if dlq is None else dlq['messages']}",
        f"since {hour['since'][11:16]}Z completed {hour['completed']}   failed {hour['failed']}   "
        f"in progress {hour['in_progress']}",
    ]
    for err in hour["top_errors"]:
        lines.append(f"  {err['count']:>5}  {err['error_code']}")
    workers = data["workers"]
    lines.append(f"workers    {len(workers)} seen in the last 5 min")
    for w in workers:
        lines.append(
            f"  {w['worker_id']}  {w.get('state')}  {w.get('model_id')} on {w.get('device')}  "
            f"in flight {w.get('in_flight', 0)}  seen {w.get('seen_at', '')[:19]}"
        )
    return "\n".join(lines)


def status(
    watch: Annotated[float | None, typer.Option(help="Refresh every N seconds until Ctrl-C.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue depth, in flight, delayed, DLQ depth, oldest message; jobs completed and failed this hour and the
    last with the top error codes (from the workers' hourly counts); workers seen in the last 5 minutes."""
    from consumer.aws.clients import make_cloudwatch
    from consumer.producer.overview import overview
    from consumer.storage.workers import WorkerRegistry

    clients, s = _aws()
    queue_url, bucket = require(s.queue_url, "queue_url"), require(s.bucket, "bucket")
    cloudwatch = make_cloudwatch(s)
    workers = WorkerRegistry(clients.s3, bucket, s.workers_prefix)
    while True:
        data = overview(clients.sqs, cloudwatch, queue_url, workers)
        if watch and not as_json:
            typer.echo("\x1b[2J\x1b[H", nl=False)
        emit(data, as_json, render_status(data))
        if not watch:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages.")] = 10,
    as_json: JsonFlag = False,
) -> None:
    """Dead-lettered messages with their job id and last error (from the job record). SQS has no peek: each
    listed message is received once and made visible again (its DLQ receive count goes up by one)."""
    from consumer.producer.overview import peek_dlq
    from consumer.storage.jobs import JobStore
    from consumer.storage.record_backends import records_for

    clients, s = _aws()
    dlq = _dead_letters(clients.sqs, require(s.queue_url, "queue_url"))
    rows = peek_dlq(
        clients.sqs,
        dlq.url,
        JobStore(clients.s3, require(s.bucket, "bucket"), s.jobs_prefix, records=records_for(clients, s)),
        limit,
    )
    text = "\n".join(
        f"{r['job_id'] or '(no job id)'}  {r['error_code'] or '?'}: {r['error_message'] or ''}"
        f"  (sent {r['sent_at'][:19]}, message {r['message_id']})"
        for r in rows
    )
    emit(rows, as_json, text or "DLQ is empty")


@dlq_app.command("redrive")
def dlq_redrive(
    job: Annotated[list[str] | None, typer.Option("--job", help="Only these job ids (repeat the option).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Move dead-lettered messages back to the request queue: all of them (StartMessageMoveTask where the
    endpoint has it, else copy + delete) or only --job ones. Each redriven job runs again as its next generation."""
    from botocore.exceptions import ClientError

    from consumer.aws.failures import error_code, http_status

    clients, s = _aws()
    sqs = clients.sqs
    queue_url = require(s.queue_url, "queue_url")
    dlq = _dead_letters(sqs, queue_url)
    if not job:
        try:
            task = sqs.start_message_move_task(SourceArn=dlq.arn, DestinationArn=dlq.source_arn)
            emit({"method": "StartMessageMoveTask", "task": task.get("TaskHandle")}, as_json, "move task started")
            return
        except ClientError as exc:
            why = error_code(exc) or f"HTTP {http_status(exc)}"
            typer.echo(f"StartMessageMoveTask not available here ({why}); copying the messages instead", err=True)
    moved, left = _copy_back(sqs, dlq.url, queue_url, set(job or []))
    result = {"method": "copy", "moved": moved, "missing": sorted(left)}
    text = f"moved {moved} message(s)" + (f"; not in the DLQ: {', '.join(sorted(left))}" if left else "")
    emit(result, as_json, text)
    raise typer.Exit(1 if left else 0)


def _copy_back(sqs: Any, dlq_url: str, queue_url: str, only: set[str]) -> tuple[int, set[str]]:
    """Send each (selected) message to the queue, then delete it from the DLQ: a crash in between duplicates,
    never loses (the job record makes the duplicate a replay). Unselected messages are made visible again."""
    from consumer.producer.overview import job_id_of

    moved, skipped, wanted = 0, [], set(only)
    while not only or wanted:
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=30,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        for m in messages:
            job_id = job_id_of(m["Body"])
            if only and job_id not in only:
                skipped.append(m["ReceiptHandle"])
                continue
            # A copy is a new message (a new MessageId), with the original's attributes (a task keeps its kind).
            entry: dict = {"QueueUrl": queue_url, "MessageBody": m["Body"]}
            if m.get("MessageAttributes"):
                entry["MessageAttributes"] = m["MessageAttributes"]
            if queue_url.endswith(".fifo"):
                entry |= {"MessageGroupId": "redrive", "MessageDeduplicationId": str(job_id or m["MessageId"])}
            sqs.send_message(**entry)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            wanted.discard(job_id or "")
            moved += 1
    for receipt in skipped:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return moved, wanted


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.add_typer(dlq_app, name="dlq")
