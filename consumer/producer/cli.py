"""Producer and operator commands: enqueue, say, voices, jobs, dlq. torch-free, so they start fast."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

voices_app = typer.Typer(help="The voice library in S3 (voices/{voice_id}/).", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect jobs.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]


def _settings():
    from pydantic import ValidationError

    from consumer.core.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc


def _require(value: str | None, name: str) -> str:
    if not value:
        typer.echo(f"set F5_WORKER_{name.upper()} (see docs/settings.md)", err=True)
        raise typer.Exit(2)
    return value


def _client():
    from consumer.aws.clients import make_clients
    from consumer.producer.client import Client

    s = _settings()
    return Client(
        make_clients(s),
        _require(s.queue_url, "queue_url"),
        _require(s.bucket, "bucket"),
        jobs_prefix=s.jobs_prefix,
        events_queue_url=s.events_queue_url,
    ), s


def _emit(data: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(text if text is not None else json.dumps(data, indent=2, default=str))


def _build_request(body: dict) -> Any:
    from pydantic import ValidationError

    from contracts.requests import SynthesisRequest, describe_validation_error

    try:
        return SynthesisRequest.model_validate(body)
    except ValidationError as exc:
        typer.echo(f"invalid request: {describe_validation_error(exc)}", err=True)
        raise typer.Exit(2) from exc


def enqueue(
    file: Annotated[Path | None, typer.Argument(help="JSON file of one request or a list; '-' or none: stdin.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Enqueue request(s) given as JSON; validated locally first. Exit 1 if any entry failed."""
    try:
        raw = sys.stdin.read() if file is None or str(file) == "-" else file.read_text()
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        typer.echo(f"not JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    requests = [_build_request(item) for item in (data if isinstance(data, list) else [data])]
    if not requests:
        typer.echo("nothing to enqueue: the input is an empty list", err=True)
        raise typer.Exit(2)
    client, _ = _client()
    result = client.submit_batch(requests)
    _emit({"sent": result.sent, "failed": result.failed}, as_json, "\n".join(f"queued {j}" for j in result.sent))
    for job_id, reason in result.failed.items():
        typer.echo(f"failed {job_id}: {reason}", err=True)
    raise typer.Exit(1 if result.failed else 0)


def say(
    text: Annotated[str, typer.Argument(help="Text to speak; @FILE reads it from a file, - from stdin.")],
    voice: Annotated[str, typer.Option(help="Voice id from the library.")] = "basic-en",
    out: Annotated[Path, typer.Option(help="Where to save the audio.")] = Path("speech.wav"),
    audio_format: Annotated[str, typer.Option("--format", help="wav, flac, mp3, opus or pcm.")] = "wav",
    seed: Annotated[int | None, typer.Option(help="Fixed seed.")] = None,
    speed: Annotated[float | None, typer.Option(help="Speaking rate (0.3-3.0).")] = None,
    nfe_steps: Annotated[int | None, typer.Option(help="Sampling steps (fewer: faster, rougher).")] = None,
    sample_rate: Annotated[int | None, typer.Option(help="Output sample rate in Hz.")] = None,
    loudness: Annotated[float | None, typer.Option(help="Integrated loudness target in LUFS, e.g. -16.")] = None,
    job_id: Annotated[
        str | None, typer.Option(help="Your own job id: running the same command again is a safe retry.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Text → job → wait → download the audio file."""
    from contracts.events import SynthesisCompleted

    text = _read_text(text)
    options = {"seed": seed, "speed": speed, "nfe_steps": nfe_steps}
    output = {"format": audio_format, "sample_rate": sample_rate, "target_lufs": loudness}
    request = _build_request(
        {
            "job_id": job_id or f"say-{uuid.uuid4().hex[:16]}",
            "text": text,
            "voice": {"voice_id": voice},
            "output": {k: v for k, v in output.items() if v is not None},
            "options": {k: v for k, v in options.items() if v is not None},
        }
    )
    client, _ = _client()
    client.submit(request)
    started = time.monotonic()
    with typer.progressbar(length=1, label=f"synthesizing {request.job_id}", file=sys.stderr) as bar:
        try:
            event = client.wait(request.job_id, timeout_s=timeout)
        except TimeoutError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        bar.update(1)
    if not isinstance(event, SynthesisCompleted):
        _emit(json.loads(event.model_dump_json()), as_json, f"failed: {event.error_code}: {event.error_message}")
        raise typer.Exit(1)
    client.download(event, out)
    summary = f"saved {out} ({event.output.duration_s:.2f} s audio in {time.monotonic() - started:.1f} s)"
    _emit({"event": json.loads(event.model_dump_json()), "file": str(out)}, as_json, summary)


def _read_text(text: str) -> str:
    """`-`: stdin; `@FILE`: the file's text; anything else: the text itself."""
    if text == "-":
        return sys.stdin.read()
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            typer.echo(f"cannot read {text[1:]}: {getattr(exc, 'strerror', None) or exc}", err=True)
            raise typer.Exit(2) from exc
    return text


def _library(transcriber: Any = None):
    from consumer.aws.clients import make_clients
    from consumer.producer.voice_library import VoiceLibrary

    s = _settings()
    return VoiceLibrary(make_clients(s).s3, _require(s.bucket, "bucket"), s.voices_prefix, transcriber=transcriber)


def _transcriber(asr_model: str | None) -> Any:
    """The ASR model (--asr-model, else F5_WORKER_ASR_MODEL), loaded; None when neither is set. Imports torch."""
    from consumer.core.logs import configure
    from consumer.engine.asr import build_transcriber

    s = _settings()
    configure(s.log_level, s.log_json)  # the model's load is logged to stderr: stdout stays the command's output
    return build_transcriber(s.model_copy(update={"asr_model": asr_model or s.asr_model}))


@voices_app.command("add")
def voices_add(
    voice_id: str,
    audio: Annotated[Path, typer.Argument(help="Reference clip (wav/flac/mp3/ogg), ≤ 12 s of speech.")],
    transcript: Annotated[
        str | None, typer.Option(help="Exact transcript of the clip; omit to have the ASR model transcribe it.")
    ] = None,
    asr_model: Annotated[
        str | None,
        typer.Option(help="Whisper model directory or hub id for a clip without --transcript (F5_WORKER_ASR_MODEL)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate a clip and store it as a voice."""
    from consumer.core.errors import WorkerError

    try:
        clip = audio.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {audio}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        transcriber = _transcriber(asr_model) if transcript is None else None
        manifest = _library(transcriber).add(voice_id, clip, transcript)
    except (WorkerError, OSError) as exc:
        typer.echo(f"rejected: {exc}", err=True)
        raise typer.Exit(1) from exc
    recognised = f"; recognised transcript: {manifest['transcript']!r}" if transcriber is not None else ""
    _emit(manifest, as_json, f"added {voice_id} ({manifest['duration_s']} s{recognised})")


@voices_app.command("list")
def voices_list(as_json: JsonFlag = False) -> None:
    """List voices."""
    voices = _library().list()
    _emit(voices, as_json, "\n".join(f"{v['voice_id']}\t{v['duration_s']} s\t{v['transcript']}" for v in voices))


@voices_app.command("show")
def voices_show(voice_id: str, as_json: JsonFlag = False) -> None:
    """Show a voice's manifest."""
    manifest = _library().show(voice_id)
    if manifest is None:
        typer.echo(f"no voice {voice_id!r}", err=True)
        raise typer.Exit(1)
    _emit(manifest, as_json)


@voices_app.command("rm")
def voices_rm(voice_id: str) -> None:
    """Delete a voice."""
    if not _library().remove(voice_id):
        typer.echo(f"no voice {voice_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {voice_id}")


@jobs_app.command("show")
def jobs_show(job_id: str, as_json: JsonFlag = False) -> None:
    """Show a finished job's recorded event, completed or failed (exit 1 if not finished)."""
    client, _ = _client()
    event = client.result(job_id)
    if event is None:
        typer.echo(f"job {job_id} has no recorded outcome (not finished, or unknown)", err=True)
        raise typer.Exit(1)
    _emit(json.loads(event.model_dump_json()), as_json)


@jobs_app.command("redeliver")
def jobs_redeliver(job_id: str, as_json: JsonFlag = False) -> None:
    """Send a finished job's event again (SNS and its webhook), e.g. after a receiver's outage (exit 1 if the job
    has no recorded outcome)."""
    client, _ = _client()
    try:
        event = client.redeliver(job_id)
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    _emit({"job_id": job_id, "event_id": event.event_id, "type": event.type}, as_json, f"queued: {event.event_id}")


def _dlq(sqs, queue_url: str) -> tuple[str, str, str]:
    """(dlq_url, dlq_arn, queue_arn) from the queue's redrive policy."""
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy", "QueueArn"])["Attributes"]
    if "RedrivePolicy" not in attrs:
        typer.echo("the queue has no redrive policy (no DLQ)", err=True)
        raise typer.Exit(1)
    dlq_arn = json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"]
    dlq_url = sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[1])["QueueUrl"]
    return dlq_url, dlq_arn, attrs["QueueArn"]


@dlq_app.command("list")
def dlq_list(limit: int = 10, as_json: JsonFlag = False) -> None:
    """Peek at dead-lettered messages (they stay in the DLQ)."""
    from consumer.aws.clients import make_clients

    s = _settings()
    sqs = make_clients(s).sqs
    dlq_url, _, _ = _dlq(sqs, _require(s.queue_url, "queue_url"))
    response = sqs.receive_message(
        QueueUrl=dlq_url,
        MaxNumberOfMessages=min(limit, 10),
        VisibilityTimeout=5,
        WaitTimeSeconds=1,
        MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
    )
    messages = response.get("Messages", [])
    for m in messages:  # peeked, not taken: make them visible again
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    rows = [{"message_id": m["MessageId"], "body": m["Body"][:500], **m.get("Attributes", {})} for m in messages]
    _emit(rows, as_json, "\n".join(f"{r['message_id']}\t{r['body'][:120]}" for r in rows) or "DLQ is empty")


@dlq_app.command("redrive")
def dlq_redrive(as_json: JsonFlag = False) -> None:
    """Move dead-lettered messages back to the request queue (StartMessageMoveTask, else copy+delete)."""
    from botocore.exceptions import ClientError

    from consumer.aws.clients import make_clients

    s = _settings()
    sqs = make_clients(s).sqs
    queue_url = _require(s.queue_url, "queue_url")
    dlq_url, dlq_arn, queue_arn = _dlq(sqs, queue_url)
    try:
        task = sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=queue_arn)
        _emit({"method": "StartMessageMoveTask", "task": task.get("TaskHandle")}, as_json, "move task started")
        return
    except ClientError as exc:
        typer.echo(f"StartMessageMoveTask unavailable ({exc}); copying instead", err=True)
    moved = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            break
        for m in messages:  # send first, then delete: a crash in between duplicates, never loses
            # A copy is a new message (a new MessageId), with the original's attributes (a task keeps its kind).
            entry: dict = {"QueueUrl": queue_url, "MessageBody": m["Body"]}
            if m.get("MessageAttributes"):
                entry["MessageAttributes"] = m["MessageAttributes"]
            if queue_url.endswith(".fifo"):
                entry |= {"MessageGroupId": "redrive", "MessageDeduplicationId": _dedup_id(m)}
            sqs.send_message(**entry)
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    _emit({"method": "copy", "moved": moved}, as_json, f"moved {moved} message(s)")


def _dedup_id(message: dict) -> str:
    try:
        job_id = json.loads(message["Body"]).get("job_id")
    except (ValueError, AttributeError):
        job_id = None
    return str(job_id or message["MessageId"])


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
    app.command()(say)
    app.add_typer(voices_app, name="voices")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(dlq_app, name="dlq")
