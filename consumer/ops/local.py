"""`f5-worker local`: the whole system on this machine. An embedded AWS (moto on loopback) with the queue,
DLQ, bucket and topic; the worker with its model preloaded; one sample request through it; the completion
event printed with the audio's S3 URI. No weights configured → a generated tiny random checkpoint (the audio
is noise, the pipeline is real).

`--serve` keeps the embedded AWS and a worker running until Ctrl-C, and writes an env file (endpoint,
emulator credentials, queue, bucket, topic, events queue, model) for the CLI and the Python client in another
terminal. Presigned URLs it prints are valid while it runs."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from consumer.aws.clients import make_clients
from consumer.aws.embedded import EmbeddedAws
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure, get_logger
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings, load_settings
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.loop import Worker
from consumer.worker.process import start_engine, start_transcriber
from consumer.worker.services import StartupTimeline, build_services
from contracts.events import SynthesisCompleted, parse_event
from contracts.requests import SynthesisRequest, VoiceRef

log = get_logger(__name__)

DEMO_VOICE_ID = "basic-en"
DEMO_TEXT = "Hello from f5-worker. This sentence travelled through a queue, a GPU worker and S3."


def _banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("!" * width, file=sys.stderr)
    for line in lines:
        print(f"! {line.ljust(width - 4)} !", file=sys.stderr)
    print("!" * width, file=sys.stderr)


def _engine_settings(settings: Settings) -> Settings:
    if settings.model_dir or settings.checkpoint:
        return settings
    from consumer.engine.random_model import ensure_random_model

    model_dir = ensure_random_model(settings.cache_dir, "tiny")
    _banner(
        [
            "NO MODEL WEIGHTS CONFIGURED: using a generated TINY RANDOM F5-TTS checkpoint.",
            "The audio will be noise; every step of the pipeline is real.",
            "Real weights: F5_WORKER_CHECKPOINT=/path/model_1250000.safetensors (or --checkpoint),",
            f"or F5_WORKER_MODEL_DIR=/prepared/dir.  Generated model: {model_dir}",
        ]
    )
    return settings.model_copy(update={"model_dir": model_dir})


def _phase(message: str) -> None:
    print(f"[local] {message}", file=sys.stderr, flush=True)


def run_local(
    text: str = DEMO_TEXT,
    checkpoint: str | None = None,
    output: Path | None = None,
    serve: bool = False,
    env_file: Path = Path("f5-worker.env"),
) -> int:
    process_start = time.monotonic()
    aws = EmbeddedAws.start()
    _phase(f"embedded AWS (moto) up at {aws.endpoint_url}")
    try:
        overrides: dict[str, Any] = {
            "aws_endpoint_url": aws.endpoint_url,
            "wait_time_s": 1,
            "burst": True,
            "log_json": False,
        }
        if checkpoint:
            overrides["checkpoint"] = checkpoint
        base = load_settings(**overrides)  # a bad F5_WORKER_* variable: one line and its fix, exit 2
        configure(base.log_level, base.log_json)
        clients = make_clients(base)
        # job records in a DynamoDB table, as the infrastructure template deploys them
        resources = bootstrap(clients, ResourceSpec(jobs_table=True), base.aws_region)
        settings = _engine_settings(load_settings(**(overrides | resources.settings_fields())))
        metrics = Metrics()
        timeline = StartupTimeline(metrics, process_start)
        _phase(f"loading the model ({settings.model_dir or settings.checkpoint}) and warming it up")
        engine = start_engine(settings, timeline)
        _phase(f"model ready in {time.monotonic() - process_start:.1f} s")
        VoiceLibrary(clients.s3, settings.bucket, settings.voices_prefix, engine.sample_rate).add_example(DEMO_VOICE_ID)
        request = SynthesisRequest(
            job_id=f"demo-{uuid.uuid4().hex[:12]}",
            text=text,
            voice=VoiceRef(voice_id=DEMO_VOICE_ID),
            metadata={"source": "f5-worker local"},
        )
        clients.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=request.model_dump_json())
        _phase(f"job {request.job_id} queued")
        transcriber = start_transcriber(settings, timeline)
        Worker(build_services(settings, engine, clients=clients, metrics=metrics, transcriber=transcriber)).run()
        status = _report(clients, resources.events_queue_url, request.job_id, output, serve)
        if not serve:
            return status
        env_file.write_text("\n".join(_serve_env(settings, resources.events_queue_url)) + "\n")
        _phase(f"serving until Ctrl-C; settings for other terminals written to {env_file}:")
        _phase(f"  set -a; . ./{env_file}; set +a")
        _phase('  f5-worker say "Hello there." --voice basic-en --out hello.wav')
        api_url = _start_api(settings)
        if api_url:
            _phase(
                f"web console and HTTP API (keyless, this machine only): {api_url}/  (OpenAI base URL: {api_url}/v1)"
            )
        worker = Worker(
            build_services(settings.model_copy(update={"burst": False}), engine, clients=clients, metrics=metrics)
        )
        worker.install_signal_handlers()
        return worker.run()
    finally:
        aws.stop()


def _start_api(settings: Settings) -> str | None:
    """The HTTP door beside the worker (keyless on loopback), on F5_WORKER_API_PORT or a free port if that one is
    taken. None (and a note) when the API extra is not installed."""
    try:
        import uvicorn

        from consumer.api.app import create_app
    except ImportError:
        _phase("no web console: install the API extra (pip install 'f5-worker[api]')")
        return None
    port = settings.api_port
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:  # taken: let the system pick one
            free = socket.socket()
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
            free.close()
    api_settings = settings.model_copy(update={"api_host": "127.0.0.1", "api_port": port, "api_key_hashes": ()})
    server = uvicorn.Server(uvicorn.Config(create_app(api_settings), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, name="api", daemon=True).start()
    started = Retrying(
        stop=stop_after_delay(15),
        wait=wait_fixed(0.05),
        retry=retry_if_result(lambda up: not up),
        retry_error_callback=lambda _: False,
    )(lambda: server.started)
    return f"http://127.0.0.1:{port}" if started else None


def _serve_env(settings: Settings, events_queue_url: str | None) -> list[str]:
    """Everything a producer CLI, the Python client or a second `f5-worker run` needs to use this stack."""
    return [
        f"F5_WORKER_AWS_ENDPOINT_URL={settings.aws_endpoint_url}",
        f"AWS_ACCESS_KEY_ID={os.environ.get('AWS_ACCESS_KEY_ID', 'local')}",
        f"AWS_SECRET_ACCESS_KEY={os.environ.get('AWS_SECRET_ACCESS_KEY', 'local')}",
        f"F5_WORKER_AWS_REGION={settings.aws_region}",
        f"F5_WORKER_QUEUE_URL={settings.queue_url}",
        f"F5_WORKER_BUCKET={settings.bucket}",
        f"F5_WORKER_JOBS_TABLE={settings.jobs_table}",
        f"F5_WORKER_TOPIC_ARN={settings.topic_arn}",
        f"F5_WORKER_EVENTS_QUEUE_URL={events_queue_url}",
        f"F5_WORKER_MODEL_DIR={settings.model_dir or ''}",
    ]


def _report(clients, events_queue_url: str | None, job_id: str, output: Path | None, serve: bool) -> int:
    assert events_queue_url is not None
    response = clients.sqs.receive_message(QueueUrl=events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    events = [parse_event(m["Body"]) for m in response.get("Messages", [])]
    mine = [e for e in events if e.job_id == job_id]
    if not mine:
        print(f"no event arrived for job {job_id}", file=sys.stderr)
        return 1
    event = mine[0]
    print(json.dumps(json.loads(event.model_dump_json()), indent=2))
    if not isinstance(event, SynthesisCompleted):
        return 1
    print(f"audio: {event.output.uri}")
    if serve:  # only then does the endpoint outlive this line
        url = clients.s3.generate_presigned_url(
            "get_object", Params={"Bucket": event.output.bucket, "Key": event.output.key}, ExpiresIn=3600
        )
        print(f"presigned URL (valid while `f5-worker local --serve` runs): {url}")
    if output is not None:
        body = clients.s3.get_object(Bucket=event.output.bucket, Key=event.output.key)["Body"].read()
        output.write_bytes(body)
        print(f"saved: {output} ({event.output.duration_s:.2f} s, {event.output.bytes} bytes)")
    return 0
