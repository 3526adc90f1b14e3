"""Shared fixtures: an embedded AWS (moto server over real HTTP, or LocalStack when
F5_WORKER_TEST_LOCALSTACK_URL is set), fresh resources per test, and worker factories."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumer.audio.reference import Reference, decode_reference
from consumer.aws.clients import AwsClients, make_clients
from consumer.aws.embedded import EmbeddedAws
from consumer.aws.resources import Resources, ResourceSpec, bootstrap
from consumer.core.settings import Settings
from consumer.engine import Engine
from consumer.engine.fake import FakeEngine
from consumer.engine.model_spec import EXAMPLE_VOICE_EN, wheel_example_path
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.record_backends import records_for
from consumer.worker.loop import Worker
from consumer.worker.services import Services, build_services
from contracts.events import SynthesisCompleted, SynthesisFailed, parse_event
from tests.wheel_examples import REF_EN_FILE, REF_EN_TEXT, REF_ZH_FILE, REF_ZH_TEXT


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    localstack = os.environ.get("F5_WORKER_TEST_LOCALSTACK_URL")
    if localstack:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        yield localstack
        return
    aws = EmbeddedAws.start()
    yield aws.endpoint_url
    aws.stop()


@dataclass
class Stack:
    """One test's AWS resources and clients."""

    endpoint_url: str
    clients: AwsClients
    resources: Resources
    spec: ResourceSpec

    def settings(self, **overrides) -> Settings:
        fields = {
            "aws_endpoint_url": self.endpoint_url,
            "queue_url": self.resources.queue_url,
            "bucket": self.resources.bucket,
            "topic_arn": self.resources.topic_arn,
            "wait_time_s": 1,
            "visibility_timeout_s": 30,
            "heartbeat_interval_s": 5,
            "retry_base_delay_s": 0,
            "retry_max_delay_s": 0,
            "burst": True,
            "engine": "fake",
            "log_json": True,
        }
        if self.resources.jobs_table:
            fields["jobs_table"] = self.resources.jobs_table
        fields.update(overrides)
        return Settings(**fields)

    def send(self, body: str, **kwargs) -> str:
        return self.clients.sqs.send_message(QueueUrl=self.resources.queue_url, MessageBody=body, **kwargs)["MessageId"]

    def events(self, wait_s: int = 1) -> list[SynthesisCompleted | SynthesisFailed]:
        """Drain the events queue (subscribed to the topic)."""
        out = []
        while True:
            response = self.clients.sqs.receive_message(
                QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
            )
            messages = response.get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(parse_event(m["Body"]))
                self.clients.sqs.delete_message(
                    QueueUrl=self.resources.events_queue_url, ReceiptHandle=m["ReceiptHandle"]
                )

    def queue_counts(self, url: str | None = None) -> tuple[int, int]:
        attrs = self.clients.sqs.get_queue_attributes(
            QueueUrl=url or self.resources.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def objects(self, prefix: str) -> list[str]:
        response = self.clients.s3.list_objects_v2(Bucket=self.resources.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in response.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.clients.s3.get_object(Bucket=self.resources.bucket, Key=key)["Body"].read()

    def record(self, job_id: str) -> dict:
        """A job's stored record as raw JSON, wherever the stack keeps records (S3 or DynamoDB)."""
        found = records_for(self.clients, self.settings()).get(job_id)
        assert found is not None, f"no record of {job_id}"
        return json.loads(found[0])

    def put_record(self, job_id: str, record: dict) -> None:
        """Overwrite a job's record unconditionally (another writer's doing)."""
        records_for(self.clients, self.settings()).put(job_id, json.dumps(record).encode())


@pytest.fixture
def stack(aws_endpoint: str) -> Stack:
    return new_stack(aws_endpoint)


def new_stack(aws_endpoint: str, jobs_table: bool = False) -> Stack:
    """Fresh resources (queue, DLQ, topic, bucket with the example voice) on the embedded AWS; job records in a
    DynamoDB table with `jobs_table`, else in the bucket."""
    name = f"t{uuid.uuid4().hex[:10]}"
    spec = ResourceSpec(name=name, bucket=f"{name}-audio", max_receive_count=3, jobs_table=jobs_table)
    base = Settings(aws_endpoint_url=aws_endpoint)
    clients = make_clients(base)
    resources = bootstrap(clients, spec)
    library = VoiceLibrary(clients.s3, resources.bucket)
    library.add_example("basic-en")
    return Stack(aws_endpoint, clients, resources, spec)


@pytest.fixture
def make_worker(stack: Stack) -> Callable[..., tuple[Worker, Services]]:
    def factory(engine: Engine | None = None, **overrides) -> tuple[Worker, Services]:
        settings = stack.settings(**overrides)
        services = build_services(settings, engine or FakeEngine(), clients=make_clients(settings))
        return Worker(services), services

    return factory


@pytest.fixture
def cli_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The producer CLI pointed at this test's stack (through F5_WORKER_* variables)."""
    for key, value in stack.settings().model_dump().items():
        if key in {"aws_endpoint_url", "queue_url", "bucket", "topic_arn"}:
            monkeypatch.setenv(f"F5_WORKER_{key.upper()}", str(value))
    monkeypatch.setenv("F5_WORKER_EVENTS_QUEUE_URL", stack.resources.events_queue_url)
    return stack


@pytest.fixture(scope="session")
def reference_wav() -> bytes:
    return EXAMPLE_VOICE_EN.audio()


# --- engines and references: the tiny random F5 model is written once per session (`ensure_random_model` reuses
# it) and loaded through the same loaders as real weights; torch is imported only by the tests that ask for it.
@pytest.fixture(scope="session")
def ref_en_bytes() -> bytes:
    return wheel_example_path(REF_EN_FILE).read_bytes()


@pytest.fixture(scope="session")
def en_reference(ref_en_bytes: bytes) -> Reference:
    return decode_reference(ref_en_bytes, REF_EN_TEXT, cache_key="wheel/basic_ref_en")


@pytest.fixture(scope="session")
def zh_reference() -> Reference:
    return decode_reference(wheel_example_path(REF_ZH_FILE).read_bytes(), REF_ZH_TEXT, cache_key="wheel/zh")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from consumer.engine.random_model import ensure_random_model

    return ensure_random_model(tmp_path_factory.getbasetemp() / "engine-models", "tiny")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_path: Path) -> Iterator[Engine]:
    """The one tiny F5 engine of the session (loaded once; tests must not change its state)."""
    from consumer.engine.f5 import F5Engine
    from consumer.engine.model_spec import load_model_dir

    engine = F5Engine(load_model_dir(tiny_model_path), device="cpu")
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_whisper import write_tiny_whisper

    return write_tiny_whisper(tmp_path_factory.mktemp("asr") / "tiny-whisper")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


_SUMMARY_LINES: list[str] = []


@pytest.fixture
def summary_line() -> Callable[[str], None]:
    """Harness tests report their figures here; they are printed at the end of the run."""
    return _SUMMARY_LINES.append


def pytest_terminal_summary(terminalreporter) -> None:
    if _SUMMARY_LINES:
        terminalreporter.section("harness figures")
        for line in _SUMMARY_LINES:
            terminalreporter.write_line(line)
