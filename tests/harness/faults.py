"""Fault injection through botocore's event hooks: chosen operations fail (connection dropped) or time out
at configurable rates, before the request leaves the process. botocore's own retries see them first, as
they would see real network faults; what gets through reaches the worker's retry logic.

    .venv/bin/python -m tests.harness.faults --jobs 200 --rate 0.3
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

from consumer.aws.clients import AwsClients, make_clients
from consumer.aws.embedded import EmbeddedAws
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.engine.fake import FakeEngine
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.loop import Worker
from consumer.worker.services import build_services
from contracts.events import SynthesisCompleted, parse_event

DEFAULT_TARGETS = (
    "s3.PutObject",
    "s3.GetObject",
    "s3.HeadObject",
    "sns.Publish",
    "sqs.DeleteMessage",
    "sqs.DeleteMessageBatch",
    "sqs.ChangeMessageVisibility",
    "sqs.ChangeMessageVisibilityBatch",
)


@dataclass
class FaultInjector:
    rate: float
    targets: tuple[str, ...] = DEFAULT_TARGETS
    seed: int = 0
    injected: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    uploads: Counter = field(default_factory=Counter)

    def attach(self, clients: AwsClients) -> None:
        for client in (clients.s3, clients.sqs, clients.sns):
            client.meta.events.register("before-send", self._maybe_fail)
        clients.s3.meta.events.register("before-parameter-build.s3.PutObject", self._remember_key)
        clients.s3.meta.events.register("after-call.s3.PutObject", self._count_upload)

    def _remember_key(self, params, context, **_) -> None:
        context["fault_key"] = params.get("Key", "")

    def _count_upload(self, parsed, context, **_) -> None:
        key = context.get("fault_key", "")
        if key.startswith("outputs/"):
            with self._lock:
                self.uploads[key] += 1

    def _maybe_fail(self, request, **kwargs) -> None:
        name = kwargs.get("event_name", "").removeprefix("before-send.")
        service, _, operation = name.partition(".")
        target = f"{service}.{operation}"
        if target not in self.targets:
            return
        with self._lock:
            roll = self._rng.random()
        if roll >= self.rate:
            return
        kind = "timeout" if roll < self.rate / 2 else "dropped"
        with self._lock:
            self.injected[f"{target}:{kind}"] += 1
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        raise ConnectionClosedError(endpoint_url=request.url)


@dataclass
class FaultReport:
    jobs: int
    injected: Counter
    lost: list[str]
    duplicated: list[str]
    engine_calls: int
    elapsed_s: float

    def summary(self) -> str:
        return (
            f"faults: jobs={self.jobs} injected={sum(self.injected.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.injected.items()))}) "
            f"lost={len(self.lost)} duplicated={len(self.duplicated)} engine_calls={self.engine_calls} "
            f"elapsed_s={self.elapsed_s:.1f}"
        )


def run_faults(jobs: int = 40, rate: float = 0.5, seed: int = 0, in_flight: int = 2) -> FaultReport:
    started = time.monotonic()
    configure("ERROR")
    aws = EmbeddedAws.start()
    try:
        base = Settings(aws_endpoint_url=aws.endpoint_url)
        admin = make_clients(base)
        res = bootstrap(admin, ResourceSpec(name="faults", bucket="faults-audio", max_receive_count=30))
        VoiceLibrary(admin.s3, res.bucket).add_example("basic-en")
        for i in range(jobs):
            body = {"job_id": f"fault-{i:04d}", "text": f"Fault tolerant job {i}.", "voice": {"voice_id": "basic-en"}}
            admin.sqs.send_message(QueueUrl=res.queue_url, MessageBody=json.dumps(body))
        settings = Settings(
            aws_endpoint_url=aws.endpoint_url,
            **res.settings_fields(),
            wait_time_s=1,
            burst=True,
            visibility_timeout_s=5,
            heartbeat_interval_s=1,
            retry_base_delay_s=0,
            retry_max_delay_s=1,
            max_in_flight=in_flight,
            voice_revalidate_s=0,
        )
        worker_clients = make_clients(settings)
        injector = FaultInjector(rate=rate, seed=seed)
        injector.attach(worker_clients)
        engine = FakeEngine()
        # Burst mode exits on an empty poll; jobs hidden by a backoff may still come back: loop until none are.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            Worker(build_services(settings, engine, clients=worker_clients)).run()
            attrs = admin.sqs.get_queue_attributes(QueueUrl=res.queue_url, AttributeNames=["All"])["Attributes"]
            if attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                break
            time.sleep(1)
        completed: dict[str, set[str]] = {}
        while messages := admin.sqs.receive_message(
            QueueUrl=res.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            for m in messages:
                event = parse_event(m["Body"])
                if isinstance(event, SynthesisCompleted):
                    completed.setdefault(event.job_id, set()).add(event.event_id)
                admin.sqs.delete_message(QueueUrl=res.events_queue_url, ReceiptHandle=m["ReceiptHandle"])
        keys = {o["Key"] for o in admin.s3.list_objects_v2(Bucket=res.bucket, Prefix="outputs/").get("Contents", [])}
        job_ids = [f"fault-{i:04d}" for i in range(jobs)]
        lost = [j for j in job_ids if j not in completed or f"outputs/{j}.wav" not in keys]
        duplicated = [j for j, ids in completed.items() if len(ids) > 1]
        duplicated += [key for key, n in injector.uploads.items() if n > 1]
        return FaultReport(jobs, injector.injected, lost, duplicated, engine.calls, time.monotonic() - started)
    finally:
        aws.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run_faults(args.jobs, args.rate, args.seed)
    print(report.summary())
    return 0 if not (report.lost or report.duplicated) else 1


if __name__ == "__main__":
    raise SystemExit(main())
