"""The HTTP door's cost, measured side by side in one run (fake engine: the queue, S3 and HTTP are what is timed).

1. Added latency: `/v1/audio/speech` end to end versus enqueueing the same job directly and waiting on the events
   queue, alternated job by job; the difference of the medians (goal: at most 30 ms).
2. 200 concurrent waiting requests against one API process: all complete; the API process's RSS growth; AWS
   requests per job (from the API's own `f5_api_aws_requests_total`: no per-request polling loop).

The API runs as `f5-worker api` in a child process (its memory and requests are its own), with its own events
queue subscribed to the topic; moto runs in another child; the worker runs here.

    .venv/bin/python benchmarks/api.py [--jobs 30] [--concurrent 200]

Last line: `api: added_ms_p50=A concurrent=200 completed=C rss_mb=R requests_per_job=Q`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._moto import moto_server
from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.engine.fake import FakeEngine
from consumer.producer.client import Client
from consumer.producer.voice_library import VoiceLibrary
from contracts.requests import SynthesisRequest, VoiceRef


def own_events_queue(clients, topic_arn: str, name: str) -> str:
    """A queue subscribed to the topic with raw delivery, for the API replica alone."""
    url = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def wait_until_up(url: str, timeout_s: float = 60.0) -> None:
    """Until the API child answers `/healthz` (exits naming it after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                sys.exit("the API did not start")
            time.sleep(0.2)


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    return int(re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def aws_requests(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^f5_api_aws_requests_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


async def concurrent_speech(url: str, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        body = {"model": "tts-1", "voice": "basic-en", "response_format": "wav"}
        replies = await asyncio.gather(
            *(http.post("/v1/audio/speech", json=body | {"input": f"Concurrent request {i}."}) for i in range(n))
        )
    return [r.status_code for r in replies]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30, help="jobs per path for the latency comparison")
    parser.add_argument("--concurrent", type=int, default=200)
    args = parser.parse_args()
    configure("WARNING", json_lines=False)

    from consumer.worker.loop import Worker
    from consumer.worker.services import build_services

    with moto_server() as endpoint:
        admin = make_clients(Settings(aws_endpoint_url=endpoint))
        res = bootstrap(admin, ResourceSpec(name="bench-api", bucket="bench-api-audio"))
        VoiceLibrary(admin.s3, res.bucket).add_example("basic-en")
        api_events = own_events_queue(admin, res.topic_arn, "bench-api-replica-1")
        settings = Settings(
            aws_endpoint_url=endpoint,
            queue_url=res.queue_url,
            bucket=res.bucket,
            topic_arn=res.topic_arn,
            max_in_flight=10,
            log_level="WARNING",
        )
        worker = Worker(build_services(settings, FakeEngine(seconds_per_char=0.02)))
        worker_thread = threading.Thread(target=worker.run, daemon=True)
        worker_thread.start()

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = os.environ | {
            "F5_WORKER_AWS_ENDPOINT_URL": endpoint,
            "F5_WORKER_QUEUE_URL": res.queue_url,
            "F5_WORKER_BUCKET": res.bucket,
            "F5_WORKER_API_PORT": str(port),
            "F5_WORKER_API_EVENTS_QUEUE_URL": api_events,
            "F5_WORKER_API_RATE_PER_MINUTE": "100000",
            "F5_WORKER_LOG_LEVEL": "WARNING",
        }
        api = subprocess.Popen([sys.executable, "-m", "consumer.cli", "api"], env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url)

            client = Client(admin, res.queue_url, res.bucket, events_queue_url=res.events_queue_url)
            direct, through_api = [], []
            with httpx.Client(base_url=url, timeout=120) as http:
                for i in range(args.jobs + 2):  # the first pair warms both paths up
                    started = time.perf_counter()
                    job = client.submit(
                        SynthesisRequest(
                            job_id=f"direct-{uuid.uuid4().hex}",
                            text=f"Direct job {i}.",
                            voice=VoiceRef(voice_id="basic-en"),
                        )
                    )
                    client.wait(job, timeout_s=60, poll_s=1)
                    direct.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    reply = http.post(
                        "/v1/audio/speech",
                        json={
                            "model": "tts-1",
                            "voice": "basic-en",
                            "input": f"API job {i}.",
                            "response_format": "wav",
                        },
                    )
                    assert reply.status_code == 200, reply.text
                    through_api.append(time.perf_counter() - started)
            direct, through_api = direct[2:], through_api[2:]
            added_ms = (statistics.median(through_api) - statistics.median(direct)) * 1000
            print(
                f"latency over {args.jobs} jobs each: direct (SQS + events queue) median "
                f"{statistics.median(direct) * 1000:.0f} ms, through /v1/audio/speech median "
                f"{statistics.median(through_api) * 1000:.0f} ms, added {added_ms:.0f} ms (goal <= 30)"
            )

            requests_before = aws_requests(url)
            Path(f"/proc/{api.pid}/clear_refs").write_text("5")
            rss_before = rss_mb(api.pid)
            started = time.perf_counter()
            codes = asyncio.run(concurrent_speech(url, args.concurrent))
            wall = time.perf_counter() - started
            completed = codes.count(200)
            growth = rss_mb(api.pid, "VmHWM") - rss_before
            per_job = (aws_requests(url) - requests_before) / max(1, args.concurrent)
            print(
                f"{args.concurrent} concurrent requests: {completed} completed in {wall:.1f} s, API RSS growth "
                f"{growth:.0f} MB, {per_job:.1f} AWS requests per job (statuses: {json.dumps(Counter(codes))})"
            )
            print(
                f"api: added_ms_p50={added_ms:.0f} concurrent={args.concurrent} completed={completed} "
                f"rss_mb={growth:.0f} requests_per_job={per_job:.1f}"
            )
        finally:
            api.terminate()
            api.wait(timeout=30)
            worker.stop()
            worker_thread.join(timeout=60)  # before moto goes away


if __name__ == "__main__":
    main()
