"""One plain redrive is one new generation, end to end on a real LocalStack (`localstack/run-host.sh`, started here
on a port of its own and stopped at the end). moto has no `StartMessageMoveTask`; LocalStack's keeps the MessageId
and the receive count, which goes on past `maxReceiveCount`: the worker must still give each redrive exactly one
generation with the full retry budget. Skipped only where run-host.sh finds no Python 3.12 (its exit code 3); any
other failure to start LocalStack fails the test.

The job's output bucket is allowed but missing: generation 1 retries without synthesizing and fails
(`retries_exhausted`) into the DLQ; `f5-worker dlq redrive` with the cause unfixed runs exactly one more generation,
back into the DLQ; the bucket is created and a second redrive completes generation 3. Between them the dead-letter
sweep (which every worker runs each minute) looks at the dead letter and finds its outcome recorded; its receive
adds one to the count the move task keeps."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.aws.clients import AwsClients, make_clients
from consumer.aws.resources import Resources, ResourceSpec, bootstrap
from consumer.core.settings import Settings
from consumer.engine.fake import FakeEngine
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.dead_letters import DeadLetterWatch
from consumer.worker.loop import Worker
from consumer.worker.services import Services, build_services
from contracts.events import SynthesisCompleted, SynthesisFailed, parse_event
from tests.paths import REPO

START_TIMEOUT_S = 120  # the first start creates localstack/.venv (about 40 s); a warm one is healthy in ~2 s
NO_PYTHON_312 = 3  # run-host.sh's exit code when it finds no Python 3.12
SERVICES = ("sqs", "sns", "s3")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as response:
            services = json.load(response).get("services", {})
    except (OSError, ValueError):
        return False
    return all(services.get(name) in ("available", "running") for name in SERVICES)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the whole process group, SIGKILL after 5 s; then SIGKILL whatever of the group is left."""
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children (the init hook) outliving LocalStack itself


@pytest.fixture(scope="module")
def localstack_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A LocalStack of this module's own: `bash localstack/run-host.sh` on a free port, state in a temporary
    directory, in its own process group (stopped with it)."""
    port = _free_port()
    state = tmp_path_factory.mktemp("localstack")
    log_path = state / "localstack.log"
    env = {**os.environ, "LOCALSTACK_PORT": str(port), "LOCALSTACK_VOLUME_DIR": str(state / "volume")}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            ["bash", str(REPO / "localstack" / "run-host.sh")],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            rc = process.poll()
            if rc == NO_PYTHON_312:
                pytest.skip(f"LocalStack cannot run here: {_tail(log_path, 3)}")
            if rc is not None:
                pytest.fail(f"localstack/run-host.sh exited with {rc} before LocalStack answered:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"LocalStack on {url} not healthy after {START_TIMEOUT_S}s:\n{_tail(log_path)}")
            time.sleep(0.25)
        yield url
    finally:
        _stop(process)


# --- the scenario's tools ----------------------------------------------------------------------------------------
class Deliveries:
    """Every request-queue delivery the workers received: (MessageId, ApproximateReceiveCount)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def watch(self, services: Services) -> None:
        real = services.queue.receive

        def receive(max_messages: int, wait_s: int, visibility_s: int) -> list[dict]:
            got = real(max_messages, wait_s, visibility_s)
            self.seen += [(m["MessageId"], int(m["Attributes"]["ApproximateReceiveCount"])) for m in got]
            return got

        services.queue.receive = receive  # type: ignore[method-assign]


def run_burst(settings: Settings, engine: FakeEngine, deliveries: Deliveries) -> tuple[dict[str, int], Services]:
    """A worker in burst mode until the queue is empty (a fresh process's services, the same engine)."""
    services = build_services(settings, engine, clients=make_clients(settings))
    deliveries.watch(services)
    worker = Worker(services)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(30)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        pytest.fail(f"the burst worker did not finish in 30 s (outcomes {worker.outcomes}, saw {deliveries.seen})")
    return worker.outcomes, services


def counts(clients: AwsClients, url: str) -> tuple[int, int]:
    attrs = clients.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def wait_for_counts(clients: AwsClients, resources: Resources, queue: tuple[int, int], dlq: tuple[int, int]) -> None:
    """Wait (a move task runs in the background) until the queue and the DLQ hold what they should."""
    deadline = time.monotonic() + 15
    while (now := (counts(clients, resources.queue_url), counts(clients, resources.dlq_url))) != (queue, dlq):
        assert time.monotonic() < deadline, f"queue, DLQ (visible, in flight): {now}, expected {(queue, dlq)}"
        time.sleep(0.2)


def new_events(
    clients: AwsClients, resources: Resources, expected: int, timeout_s: float = 15
) -> list[SynthesisCompleted | SynthesisFailed]:
    """The events published since the last call: LocalStack delivers SNS → SQS asynchronously, so wait for
    `expected` of them, then one more second for any that should not be there."""
    assert resources.events_queue_url is not None
    out: list[SynthesisCompleted | SynthesisFailed] = []
    deadline = time.monotonic() + timeout_s
    while True:
        enough = len(out) >= expected
        if not enough and time.monotonic() > deadline:
            return out
        response = clients.sqs.receive_message(
            QueueUrl=resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        for m in messages:
            out.append(parse_event(m["Body"]))
            clients.sqs.delete_message(QueueUrl=resources.events_queue_url, ReceiptHandle=m["ReceiptHandle"])
        if enough and not messages:
            return out


def redrive(settings: Settings, resources: Resources) -> dict:
    """`f5-worker dlq redrive` through the real CLI, in its own process, pointed at the stack by F5_WORKER_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("F5_WORKER_")}
    env |= {f"F5_WORKER_{k.upper()}": v for k, v in resources.settings_fields().items()}
    env |= {
        "F5_WORKER_AWS_ENDPOINT_URL": str(settings.aws_endpoint_url),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    done = subprocess.run(
        [sys.executable, "-m", "consumer", "dlq", "redrive", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def record(clients: AwsClients, resources: Resources, job_id: str) -> dict:
    return json.loads(clients.s3.get_object(Bucket=resources.bucket, Key=f"jobs/{job_id}.json")["Body"].read())


# --- the scenario ----------------------------------------------------------------------------------------------
def test_one_plain_redrive_is_one_new_generation(
    localstack_url: str, monkeypatch: pytest.MonkeyPatch, summary_line: Callable[[str], None]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    name = f"ls{uuid.uuid4().hex[:10]}"
    clients = make_clients(Settings(aws_endpoint_url=localstack_url))
    resources = bootstrap(clients, ResourceSpec(name=name, bucket=f"{name}-audio", max_receive_count=3))
    VoiceLibrary(clients.s3, resources.bucket).add_example("basic-en")
    later = f"{name}-later"  # allowed by the settings, created only before the second redrive
    settings = Settings(
        aws_endpoint_url=localstack_url,
        queue_url=resources.queue_url,
        bucket=resources.bucket,
        topic_arn=resources.topic_arn,
        allowed_output_buckets=(later,),
        wait_time_s=1,
        visibility_timeout_s=30,
        heartbeat_interval_s=5,
        retry_base_delay_s=0,
        retry_max_delay_s=0,
        burst=True,
        engine="fake",
        log_json=True,
    )
    engine, deliveries = FakeEngine(), Deliveries()
    job_id = "redrive-1"
    body = {"job_id": job_id, "text": "Hello from LocalStack.", "voice": {"voice_id": "basic-en"}}
    message_id = clients.sqs.send_message(
        QueueUrl=resources.queue_url, MessageBody=json.dumps({**body, "output": {"bucket": later}})
    )["MessageId"]

    # 1. The bucket is missing: three receives, each a retry found before the device; the third records the failure.
    outcomes, services = run_burst(settings, engine, deliveries)
    assert outcomes == {"retry": 3}
    assert engine.calls == 0
    assert deliveries.seen == [(message_id, 1), (message_id, 2), (message_id, 3)]
    first = record(clients, resources, job_id)
    assert (first["status"], first["generation"]) == ("FAILED", 1), first
    assert first["failure"]["error_code"] == "retries_exhausted" and first["failure"]["redrivable"], first
    (failed_1,) = new_events(clients, resources, 1)
    assert isinstance(failed_1, SynthesisFailed) and failed_1.generation == 1, failed_1
    assert failed_1.error_code.value == "retries_exhausted" and "does not exist" in failed_1.error_message
    wait_for_counts(clients, resources, queue=(0, 0), dlq=(1, 0))
    assert DeadLetterWatch(services).sweep() == 0  # the dead letter has its outcome: nothing for the sweep

    # 2. A plain redrive (LocalStack's move task), the cause unfixed: exactly one more generation, one more failure.
    assert redrive(settings, resources)["method"] == "StartMessageMoveTask"
    wait_for_counts(clients, resources, queue=(1, 0), dlq=(0, 0))
    seen_before = len(deliveries.seen)
    outcomes, services = run_burst(settings, engine, deliveries)
    second_run = deliveries.seen[seen_before:]
    assert outcomes == {"retry": 3}, f"generation 2 was received {second_run}"
    assert engine.calls == 0
    assert [m for m, _ in second_run] == [message_id] * 3  # the move task keeps the MessageId
    second = record(clients, resources, job_id)
    assert (second["status"], second["generation"]) == ("FAILED", 2), second
    assert second["failure"]["error_code"] == "retries_exhausted" and second["failure"]["redrivable"], second
    failures = [failed_1, *new_events(clients, resources, 1)]
    assert [type(e).__name__ for e in failures] == ["SynthesisFailed"] * 2, failures
    assert [e.generation for e in failures] == [1, 2], failures  # not one generation per receive past the maximum
    wait_for_counts(clients, resources, queue=(0, 0), dlq=(1, 0))
    assert DeadLetterWatch(services).sweep() == 0

    # 3. The bucket exists now; a second redrive completes generation 3 with the audio where the request asked.
    clients.s3.create_bucket(Bucket=later)
    assert redrive(settings, resources)["method"] == "StartMessageMoveTask"
    wait_for_counts(clients, resources, queue=(1, 0), dlq=(0, 0))
    seen_before = len(deliveries.seen)
    outcomes, _ = run_burst(settings, engine, deliveries)
    assert outcomes == {"done": 1}, f"generation 3 was received {deliveries.seen[seen_before:]}"
    assert engine.calls == 1
    third = record(clients, resources, job_id)
    assert (third["status"], third["generation"]) == ("COMPLETED", 3), third
    (completed,) = new_events(clients, resources, 1)
    assert isinstance(completed, SynthesisCompleted) and completed.generation == 3, completed
    assert (completed.output.bucket, completed.output.key) == (later, f"outputs/{job_id}.wav")
    head = clients.s3.head_object(Bucket=later, Key=completed.output.key)
    assert head["ContentLength"] == completed.output.bytes > 0
    wait_for_counts(clients, resources, queue=(0, 0), dlq=(0, 0))
    assert len({e.event_id for e in [*failures, completed]}) == 3
    receives = [count for _, count in deliveries.seen]
    summary_line(
        f"LocalStack redrive: receive counts {receives[:3]}, {receives[3:6]}, {receives[6:]} for generations 1, 2, 3 "
        f"(maxReceiveCount 3, one MessageId); failure events at receives {[e.attempt for e in failures]}"
    )
