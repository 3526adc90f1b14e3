"""Producer commands: enqueue, say, voices (jobs: `jobs_cli`; status and DLQ: `queue_cli`). torch-free, so they
start fast."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from consumer.producer import jobs_cli, queue_cli
from consumer.producer.cli_common import JsonFlag, emit, require, settings
from consumer.producer.cli_common import client as make_client

_ADD_VOICE = '`f5-worker voices add ID CLIP --transcript "words spoken in CLIP"`'
voices_app = typer.Typer(
    help="The voice library in S3 (voices/{voice_id}/).", no_args_is_help=True, rich_markup_mode=None
)


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
    client, s = make_client()
    _require_voices(client, s.voices_prefix, requests)
    result = client.submit_batch(requests)
    emit({"sent": result.sent, "failed": result.failed}, as_json, "\n".join(f"queued {j}" for j in result.sent))
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
    play: Annotated[
        bool,
        typer.Option(
            "--play",
            help="Play the audio (needs an audio player): from its first block while the job runs when the player "
            "reads a stream (ffplay; sox's play and aplay for some formats), else once saved.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Text → job → wait (showing its phases on stderr) → download the audio file. Exit 1 if the job failed or
    was cancelled, or did not finish within --timeout."""
    from consumer.producer.playback import play as play_file
    from consumer.producer.playback import stream_command
    from consumer.producer.progress_view import PhaseReporter
    from contracts.events import SynthesisCompleted

    text = _read_text(text)
    options = {"seed": seed, "speed": speed, "nfe_steps": nfe_steps}
    player = stream_command(audio_format, sample_rate or 24_000) if play else None
    streamed = player is not None and audio_format != "flac" and loudness is None
    output = {"format": audio_format, "sample_rate": sample_rate, "target_lufs": loudness, "stream": streamed or None}
    request = _build_request(
        {
            "job_id": job_id or f"say-{uuid.uuid4().hex[:16]}",
            "text": text,
            "voice": {"voice_id": voice},
            "output": {k: v for k, v in output.items() if v is not None},
            "options": {k: v for k, v in options.items() if v is not None},
        }
    )
    client, s = make_client()
    _require_voices(client, s.voices_prefix, [request])
    client.submit(request)
    started = time.monotonic()
    if streamed:
        assert player is not None
        _play_stream(client, request.job_id, player, timeout)
    phases = PhaseReporter(sys.stderr)
    try:
        event = client.wait(request.job_id, timeout_s=timeout, poll_s=0.5, on_record=phases)
    except TimeoutError as exc:
        phases.close()
        typer.echo(f"{exc}; it may still finish: f5-worker jobs show {request.job_id}", err=True)
        raise typer.Exit(1) from exc
    if not isinstance(event, SynthesisCompleted):
        phases.close()
        emit(json.loads(event.model_dump_json()), as_json, f"failed: {event.error_code}: {event.error_message}")
        raise typer.Exit(1)
    phases.close(f"uploaded {event.output.uri}")
    client.download(event, out)
    summary = f"saved {out} ({event.output.duration_s:.2f} s audio in {time.monotonic() - started:.1f} s)"
    emit({"event": json.loads(event.model_dump_json()), "file": str(out)}, as_json, summary)
    if play and not streamed:
        problem = play_file(out)
        if problem:
            typer.echo(f"not played: {problem}", err=True)


def _play_stream(client: Any, job_id: str, command: list[str], timeout: float) -> None:
    """Feed the job's blocks to a player as they come; the player is done when this returns. A failed job
    exits 1 with its reason (the player has played what came before)."""
    from consumer.core.errors import StreamFailed
    from consumer.producer.playback import StreamPlayer

    player = StreamPlayer(command)
    playing = True
    try:
        for block in client.stream(job_id, timeout_s=timeout):
            playing = playing and player.feed(block)  # a player closed by its user is not fed again
    except (StreamFailed, TimeoutError) as exc:
        player.finish()
        typer.echo(f"failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    problem = player.finish()
    if problem:
        typer.echo(f"not played: {problem}", err=True)


def _require_voices(client: Any, voices_prefix: str, requests: list[Any]) -> None:
    """Every library voice the requests name exists (the lookup the HTTP door makes): a typo is exit 2 here, not
    a failed job later."""
    from consumer.core.errors import ConfigurationError
    from consumer.producer.voice_library import EXAMPLE_VOICE_ID, VoiceLibrary

    library = VoiceLibrary(client.aws.s3, client.bucket, voices_prefix)
    unknown = library.unknown(r.voice.voice_id for r in requests if r.voice.voice_id)
    if unknown:
        example = f" (`f5-worker init` adds {EXAMPLE_VOICE_ID})" if EXAMPLE_VOICE_ID in unknown else ""
        raise ConfigurationError(
            f"unknown voice {', '.join(map(repr, unknown))}: not in the voice library of bucket {client.bucket}",
            f"list the voices with `f5-worker voices list`, or add one with {_ADD_VOICE}{example}",
        )


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

    s = settings()
    return VoiceLibrary(make_clients(s).s3, require(s.bucket, "bucket"), s.voices_prefix, transcriber=transcriber)


def _transcriber(asr_model: str | None) -> Any:
    """The ASR model (--asr-model, else F5_WORKER_ASR_MODEL), loaded; None when neither is set. Imports torch."""
    from consumer.core.logs import configure
    from consumer.engine.asr import build_transcriber

    s = settings()
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
    force: Annotated[bool, typer.Option("--force", help="Replace the voice if the id is taken.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a clip and store it as a voice (exit 2 if the id is taken: --force replaces it). Each stored
    clip has a version, recorded in the completion events of the jobs that used it."""
    from consumer.core.errors import VoiceExists, WorkerError

    try:
        clip = audio.read_bytes()
    except OSError as exc:
        typer.echo(f"cannot read {audio}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        transcriber = _transcriber(asr_model) if transcript is None else None
        manifest = _library(transcriber).add(voice_id, clip, transcript, force=force)
    except VoiceExists as exc:
        typer.echo(f"f5-worker: {exc}\n  fix: pick another id, or add --force to replace it", err=True)
        raise typer.Exit(2) from exc
    except (WorkerError, OSError) as exc:
        typer.echo(f"rejected: {exc}", err=True)
        raise typer.Exit(1) from exc
    recognised = f"; recognised transcript: {manifest['transcript']!r}" if transcriber is not None else ""
    version = manifest["version"]
    emit(manifest, as_json, f"added {voice_id} ({manifest['duration_s']} s, version {version}{recognised})")


@voices_app.command("list")
def voices_list(as_json: JsonFlag = False) -> None:
    """List voices (none yet: one line on stderr says how to add one)."""
    voices = _library().list()
    if not voices and not as_json:
        typer.echo(f"no voices in the library yet: add one with {_ADD_VOICE}", err=True)
        return
    emit(voices, as_json, "\n".join(f"{v['voice_id']}\t{v['duration_s']} s\t{v['transcript']}" for v in voices))


@voices_app.command("show")
def voices_show(voice_id: str, as_json: JsonFlag = False) -> None:
    """Show a voice's manifest."""
    manifest = _library().show(voice_id)
    if manifest is None:
        typer.echo(f"no voice {voice_id!r}", err=True)
        raise typer.Exit(1)
    emit(manifest, as_json)


@voices_app.command("rm")
def voices_rm(voice_id: str) -> None:
    """Delete a voice."""
    if not _library().remove(voice_id):
        typer.echo(f"no voice {voice_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"removed {voice_id}")


def register(app: typer.Typer) -> None:
    app.command()(enqueue)
    app.command()(say)
    app.add_typer(voices_app, name="voices")
    jobs_cli.register(app)
    queue_cli.register(app)
