"""Producer side: the client, the CLI commands, the voice library — against a real moto server."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from botocore.stub import Stubber
from typer.testing import CliRunner

from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.cli import app
from consumer.producer.client import Client
from contracts.requests import SynthesisRequest, VoiceRef

runner = CliRunner()


def wav_bytes(samples: np.ndarray, rate: int = 24000) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


def test_voices_add_list_show_rm_round_trip(cli_env, reference_wav, tmp_path):
    clip = tmp_path / "ref.wav"
    clip.write_bytes(reference_wav)
    added = runner.invoke(
        app, ["voices", "add", "narrator", str(clip), "--transcript", "Some call me nature.", "--json"]
    )
    assert added.exit_code == 0, added.output
    manifest = json.loads(added.output)
    assert manifest["voice_id"] == "narrator" and manifest["sample_rate"] == 24000 and len(manifest["sha256"]) == 64

    listed = json.loads(runner.invoke(app, ["voices", "list", "--json"]).output)
    assert [v["voice_id"] for v in listed] == ["basic-en", "narrator"]
    shown = json.loads(runner.invoke(app, ["voices", "show", "narrator", "--json"]).output)
    assert shown["transcript"] == "Some call me nature." and shown["transcript_source"] == "given"
    assert runner.invoke(app, ["voices", "rm", "narrator"]).exit_code == 0
    assert runner.invoke(app, ["voices", "show", "narrator"]).exit_code == 1
    assert runner.invoke(app, ["voices", "rm", "narrator"]).exit_code == 1


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (wav_bytes(np.zeros(24000 * 3, dtype=np.float32)), "silent"),
        (wav_bytes((0.3 * np.sin(np.arange(2400) / 5)).astype(np.float32)), "at least 1 s"),
        (b"%PDF-1.4 definitely not audio" * 50, "audio"),
        (b"", "empty"),
    ],
    ids=["silent", "too-short", "not-audio", "zero-length"],
)
def test_bad_clips_are_rejected_with_a_clear_message(cli_env, tmp_path, audio, message):
    clip = tmp_path / "bad.wav"
    clip.write_bytes(audio)
    result = runner.invoke(app, ["voices", "add", "bad", str(clip), "--transcript", "words"])
    assert result.exit_code == 1
    assert "rejected" in result.output and message in result.output.lower()
    assert cli_env.objects("voices/bad/") == []


def test_say_end_to_end_writes_a_playable_file(cli_env, make_worker, tmp_path):
    worker, _ = make_worker(burst=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        out = tmp_path / "hello.flac"
        result = runner.invoke(app, ["say", "Hello there, producer.", "--out", str(out), "--format", "flac", "--json"])
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert result.exit_code == 0, result.output
    # the worker's log lines share the captured output: the command's JSON is the block that starts a line
    payload, _ = json.JSONDecoder().raw_decode(result.output[result.output.index('{\n  "event"') :])
    audio, rate = sf.read(out)
    assert rate == 24000 and abs(len(audio) / rate - payload["event"]["output"]["duration_s"]) < 0.01


def test_say_reports_a_failed_job(cli_env, make_worker, tmp_path):
    # a manifest without its clip: the CLI's lookup finds the voice, the worker cannot load it
    manifest = json.loads(cli_env.get("voices/basic-en/manifest.json")) | {"voice_id": "ghost"}
    cli_env.clients.s3.put_object(
        Bucket=cli_env.resources.bucket, Key="voices/ghost/manifest.json", Body=json.dumps(manifest).encode()
    )
    worker, _ = make_worker(burst=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        result = runner.invoke(app, ["say", "Hi.", "--voice", "ghost", "--out", str(tmp_path / "x.wav")])
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert result.exit_code == 1 and "unknown_voice" in result.output


def test_enqueue_validates_locally_and_jobs_show_reads_the_record(cli_env, make_worker, tmp_path):
    bad = runner.invoke(app, ["enqueue", "-"], input=json.dumps({"job_id": "x", "text": ""}))
    assert bad.exit_code == 2 and "invalid request" in bad.output
    good = [{"job_id": f"cli-{i}", "text": "Hello.", "voice": {"voice_id": "basic-en"}} for i in range(12)]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(good))
    sent = runner.invoke(app, ["enqueue", str(path), "--json"])
    assert sent.exit_code == 0 and len(json.loads(sent.output)["sent"]) == 12  # two SendMessageBatch calls
    assert runner.invoke(app, ["jobs", "show", "cli-0"]).exit_code == 1  # not finished yet
    worker, _ = make_worker()
    worker.run()
    shown = runner.invoke(app, ["jobs", "show", "cli-0", "--json"])
    record = json.loads(shown.output)
    assert shown.exit_code == 0 and record["status"] == "COMPLETED"
    assert record["event"]["output"]["key"] == "outputs/cli-0.wav"


def test_batch_submit_reports_per_entry_failures(stack):
    clients = make_clients(stack.settings())
    client = Client(clients, stack.resources.queue_url, stack.resources.bucket)
    requests = [SynthesisRequest(job_id=f"b-{i}", text="hi", voice=VoiceRef(voice_id="basic-en")) for i in range(2)]
    with Stubber(clients.sqs) as stub:
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
                "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "try again"}],
            },
        )
        result = client.submit_batch(requests)
    assert result.sent == ["b-0"] and result.failed == {"b-1": "InternalError: try again"}


def test_dlq_list_and_redrive(cli_env):
    sqs = cli_env.clients.sqs
    sqs.send_message(QueueUrl=cli_env.resources.dlq_url, MessageBody=json.dumps({"job_id": "dead-1"}))
    listed = runner.invoke(app, ["dlq", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["job_id"] == "dead-1"
    moved = runner.invoke(app, ["dlq", "redrive", "--json"])
    assert moved.exit_code == 0, moved.output
    body = json.loads(moved.output[moved.output.index("{") :])
    if body["method"] == "copy":  # moto lacks StartMessageMoveTask; LocalStack and AWS have it
        assert body["moved"] == 1
        message = sqs.receive_message(QueueUrl=cli_env.resources.queue_url, WaitTimeSeconds=1)["Messages"][0]
        assert json.loads(message["Body"])["job_id"] == "dead-1"


def test_fifo_queue_round_trip(aws_endpoint, make_worker, stack):
    spec = ResourceSpec(name=f"{stack.spec.name}f", bucket=stack.resources.bucket, fifo=True, events_queue=False)
    clients = make_clients(stack.settings())
    fifo = bootstrap(clients, spec)
    client = Client(clients, fifo.queue_url, fifo.bucket)
    request = SynthesisRequest(job_id="fifo-1", text="First in, first out.", voice=VoiceRef(voice_id="basic-en"))
    client.submit(request)
    client.submit(request)  # same job id inside the dedup window: dropped by SQS, not synthesized twice
    worker, services = make_worker(queue_url=fifo.queue_url)
    worker.run()
    assert client.result("fifo-1") is not None and services.metrics.count("done") == 1
    assert services.metrics.count("replayed") == 0


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["local"],
        ["check"],
        ["init"],
        ["infra"],
        ["enqueue"],
        ["say"],
        ["voices"],
        ["voices", "add"],
        ["voices", "list"],
        ["voices", "show"],
        ["voices", "rm"],
        ["jobs"],
        ["jobs", "show"],
        ["jobs", "list"],
        ["jobs", "wait"],
        ["jobs", "download"],
        ["jobs", "cancel"],
        ["jobs", "redeliver"],
        ["status"],
        ["api"],
        ["api", "keys"],
        ["api", "keys", "create"],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "redrive"],
    ],
)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(command, flag):
    result = runner.invoke(app, [*command, flag])
    assert result.exit_code == 0 and "usage" in result.output.lower()
    assert "<bool>" not in result.output  # flags read as flags


def test_producer_import_path_does_not_import_torch():
    code = (
        "import sys, consumer.cli, consumer.producer.client, consumer.producer.cli, contracts;"
        "print(sorted({'torch', 'f5_tts', 'moto'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
