"""Per-message overhead of the worker loop against a moto server, with a no-op engine, as a ratio to a plain
boto3 receive → put → delete loop run in the same process on the same server.

    .venv/bin/python benchmarks/consumer.py [--messages 200]

The worker does more per message than the plain loop, by design: a conditional claim, a voice lookup,
encoding, the completion record, an SNS publish, a heartbeat thread. The ratio shows what that costs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: keep this file from shadowing the `consumer` package
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np

from consumer.aws.clients import make_clients
from consumer.aws.embedded import EmbeddedAws
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.loop import Worker
from consumer.worker.services import build_services


class NoOpEngine:
    """Returns 0.5 s of silence at once: measures everything but synthesis."""

    model_id = "no-op"
    device = "cpu"
    sample_rate = 24_000

    def load(self) -> None: ...
    def warm_up(self) -> None: ...
    def close(self) -> None: ...

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        return SynthesizedAudio(np.zeros(12_000, dtype=np.float32), self.sample_rate, job.seed)


def add_latency(clients, ms: float) -> None:
    """Model a network round trip: every AWS call waits `ms` before it is sent (moto on loopback is CPU-bound,
    real AWS calls are latency-bound; this is where holding K messages in flight pays)."""
    if ms <= 0:
        return
    for client in (clients.sqs, clients.s3, clients.sns):
        client.meta.events.register("before-send", lambda **_: time.sleep(ms / 1000))


def fill(sqs, url: str, n: int) -> None:
    for start in range(0, n, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {"job_id": f"bench-{start + i}", "text": "Benchmark text.", "voice": {"voice_id": "basic-en"}}
                ),
            }
            for i in range(min(10, n - start))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def plain_loop(clients, url: str, bucket: str, n: int, payload: bytes) -> float:
    """The baseline: receive one, put its audio, delete it."""
    done, started = 0, time.perf_counter()
    while done < n:
        for m in clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            clients.s3.put_object(Bucket=bucket, Key=f"plain/{m['MessageId']}.wav", Body=payload)
            clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            done += 1
    return time.perf_counter() - started


def worker_loop(endpoint: str, resources, n: int, in_flight: int, latency_ms: float) -> float:
    settings = Settings(
        aws_endpoint_url=endpoint,
        **resources.settings_fields(),
        wait_time_s=1,
        burst=True,
        max_in_flight=in_flight,
        log_level="WARNING",
    )
    clients = make_clients(settings)
    add_latency(clients, latency_ms)
    services = build_services(settings, NoOpEngine(), clients=clients)
    started = time.perf_counter()
    Worker(services).run()
    elapsed = time.perf_counter() - started - 1.0  # burst mode ends with one empty 1 s poll
    assert services.metrics.count("done") == n, services.metrics.count("done")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulated per-call network latency")
    args = parser.parse_args()
    configure("WARNING")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    aws = EmbeddedAws.start()
    try:
        settings = Settings(aws_endpoint_url=aws.endpoint_url)
        clients = make_clients(settings)
        resources = bootstrap(clients, ResourceSpec(name="bench", bucket="bench-audio", events_queue=False))
        VoiceLibrary(clients.s3, resources.bucket).add_example("basic-en")
        payload = bytes(24_044)  # the size of 0.5 s of 24 kHz pcm16 WAV
        n = args.messages
        fill(clients.sqs, resources.queue_url, n)
        timed = make_clients(settings)
        add_latency(timed, args.latency_ms)
        plain_s = plain_loop(timed, resources.queue_url, resources.bucket, n, payload)
        rows = [("plain boto3 receive/put/delete", plain_s)]
        for k in (1, 4):
            fill(clients.sqs, resources.queue_url, n)
            # fresh job ids per run, so every message is a new job (not a replay)
            clients.s3.delete_objects(
                Bucket=resources.bucket,
                Delete={"Objects": [{"Key": f"jobs/bench-{i}.json"} for i in range(min(n, 1000))]},
            )
            rows.append(
                (f"f5-worker, max_in_flight={k}", worker_loop(aws.endpoint_url, resources, n, k, args.latency_ms))
            )
        print(f"{n} messages against moto on loopback (no-op engine), simulated latency {args.latency_ms:g} ms/call")
        for name, seconds in rows:
            print(
                f"  {name:34s} {seconds / n * 1000:7.2f} ms/message  {n / seconds:7.1f} msg/s  "
                f"ratio to plain {plain_s / seconds:.2f}x"
            )
    finally:
        aws.stop()


if __name__ == "__main__":
    main()
