"""How busy the device stays when every AWS call is a network round trip: the real worker on a moto server (in a
child process), a device stand-in that does T ms of real work per job on one device, and a latency injected
before every AWS call. Side by side in one run: the default settings and `max_in_flight` 1..16.

    .venv/bin/python benchmarks/pipeline.py                  # T = 200 ms, 50 ms per call, 75 messages
    .venv/bin/python benchmarks/pipeline.py --device-ms 50   # short texts on a fast GPU: 300 messages
    .venv/bin/python benchmarks/pipeline.py --real base --device cuda --messages 100 --in-flight 1 4 8  # a GPU

Per setting: device duty cycle = N·T / wall from the worker's start to the last outcome recorded (not lock-held
time, which a slower pipeline could inflate), the device's busy share between its first and last job (the steady
state, without start-up and tail), messages/s against the ideal 1/T, p50/p95 job latency (enqueue → outcome
recorded), and AWS requests per completed job by operation with their cost per million jobs at list prices
(us-east-1, checked 2026-12-02: SQS $0.40 per million requests, S3 PUT/POST $5.00 and GET/HEAD $0.40 per
million, SNS publish $0.50 per million, DynamoDB on demand $0.625 per million write units and $0.125 per million
read units). Writes to the jobs index and the worker registry are counted apart from the per-job budget, and in
the cost. Job records live in a DynamoDB table, as the infrastructure template deploys them; the default settings
are run once more with records as S3 objects (F5_WORKER_JOBS_TABLE empty), side by side. Then job latency at
low load (one message at a time), default against `max_in_flight=1`.
By default N is 15 s of device work, so that the start (first poll, first voice load) does not dominate.
Last line: `pipeline: duty_default=D duty_best=B requests_per_job=R latency_ms=L usd_per_million_jobs=C
usd_per_million_jobs_s3_records=S` (R: requests per job in the budget at the default settings, L: the injected
latency per call, C and S: AWS requests' cost per million jobs with records in DynamoDB and in S3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._moto import moto_server
from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.producer.voice_library import VoiceLibrary

PRICE_PER_MILLION = {  # USD, us-east-1 list prices, 2026-12-02
    "sqs": 0.40,
    "s3:PutObject": 5.00,
    "s3:GetObject": 0.40,
    "s3:HeadObject": 0.40,
    "s3:ListObjectsV2": 5.00,
    "sns": 0.50,
    # DynamoDB on demand: $0.625 per million write request units (1 per started KB of the item written) and
    # $0.125 per million read request units (a strongly consistent read of up to 4 KB is 1)
    "dynamodb:PutItem": 0.0,
    "dynamodb:write units": 0.625,
    "dynamodb:GetItem": 0.125,
}


class DeviceStandIn:
    """T ms of real work per job on one device: a torch matmul loop (it releases the GIL, as the real engine's
    kernels do, so encoding and I/O in this process compete as they would), under one lock."""

    model_id = "device-stand-in"
    device = "cpu"
    sample_rate = 24_000

    def __init__(self, device_ms: float) -> None:
        import torch

        self._torch = torch
        torch.set_num_threads(1)  # one device: the other cores are the host's, for the pipeline around it
        self.device_ms = device_ms
        self._lock = threading.Lock()
        self._a = torch.randn(256, 256)
        self._per_iteration_ms = self._calibrate()

    def _calibrate(self) -> float:
        started = time.perf_counter()
        for _ in range(50):
            self._a @ self._a
        return (time.perf_counter() - started) * 1000 / 50

    def load(self) -> None: ...
    def warm_up(self) -> None: ...
    def close(self) -> None: ...

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        with self._lock:
            deadline = time.perf_counter() + self.device_ms / 1000
            while time.perf_counter() < deadline:
                self._a @ self._a
        return SynthesizedAudio(np.zeros(12_000, dtype=np.float32), self.sample_rate, job.seed)

    def synthesize_stream(self, job: SynthesisJob):
        yield self.synthesize(job).samples


REAL_ENGINE: dict = {"engine": None}  # --real: the F5 engine, loaded once, instead of the stand-in
EXTRA_WRITES = ("jobs-index/", "workers/")  # listings and liveness: stated apart from the per-job budget


def count_and_delay(clients, ms: float, calls: Counter) -> None:
    """Every AWS call waits `ms` before it is sent (a round trip) and is counted by service:operation, S3 writes
    for the jobs index and the worker registry apart (they are not in the per-job budget)."""

    def count(model, params, **_):
        name = f"{model.service_model.service_name}:{model.name}"
        key = params.get("Key", "") if isinstance(params, dict) else ""
        extra = next((p for p in EXTRA_WRITES if isinstance(key, str) and key.startswith(p)), None)
        calls[f"{name} ({extra.rstrip('/')})" if extra else name] += 1
        if name == "dynamodb:PutItem":
            calls["dynamodb:write units"] += item_write_units(params["Item"])

    def delay(**_):
        if ms > 0:
            time.sleep(ms / 1000)

    for client in (clients.sqs, clients.s3, clients.sns, clients.dynamodb):
        client.meta.events.register("before-parameter-build", count)
        client.meta.events.register("before-call", delay)


def item_write_units(item: dict) -> int:
    """DynamoDB's size of an item (attribute names plus values, UTF-8) in started KB: its write units."""
    size = sum(len(name.encode()) + len(next(iter(value.values())).encode()) for name, value in item.items())
    return -(-size // 1024)


def stack(endpoint: str, tag: str, records: str = "dynamodb"):
    """`records`: where job records live, "dynamodb" (the infrastructure template's table) or "s3"."""
    admin = make_clients(Settings(aws_endpoint_url=endpoint))
    spec = ResourceSpec(name=f"pipe-{tag}", bucket=f"pipe-{tag}-audio", events_queue=False)
    res = bootstrap(admin, replace(spec, jobs_table=records == "dynamodb"))
    VoiceLibrary(admin.s3, res.bucket).add_example("basic-en")
    return admin, res


def worker_services(endpoint, res, in_flight, device_ms, latency_ms, calls: Counter, **extra):
    from consumer.worker.services import build_services

    fields = {"aws_endpoint_url": endpoint, **res.settings_fields(), "log_level": "WARNING", **extra}
    if in_flight is not None:
        fields["max_in_flight"] = in_flight
    settings = Settings(**fields)
    clients = make_clients(settings, max_pool_connections=64)
    count_and_delay(clients, latency_ms, calls)
    engine = REAL_ENGINE["engine"] or DeviceStandIn(device_ms)
    services = build_services(settings, engine, clients=clients)
    calls.clear()  # setup calls (queue attributes) are not per job
    return settings, services


def body(job_id: str) -> str:
    return json.dumps({"job_id": job_id, "text": "Benchmark text.", "voice": {"voice_id": "basic-en"}})


def job_store(admin, res):
    from consumer.storage.jobs import JobStore
    from consumer.storage.record_backends import records_for

    settings = Settings(bucket=res.bucket, jobs_table=res.jobs_table)
    return JobStore(admin.s3, res.bucket, "jobs", records=records_for(admin, settings))


def run(
    endpoint: str,
    n: int,
    in_flight: int | None,
    device_ms: float,
    latency_ms: float,
    tag: str,
    records: str = "dynamodb",
) -> dict:
    """N messages queued up front, one worker in burst mode: throughput, duty cycle, requests per job."""
    from consumer.storage.job_record import Completed, Failed
    from consumer.worker.loop import Worker

    admin, res = stack(endpoint, tag, records)
    sent_at = {}
    for start in range(0, n, 10):
        entries = []
        for i in range(start, min(n, start + 10)):
            entries.append({"Id": str(i - start), "MessageBody": body(f"{tag}-{i}")})
            sent_at[f"{tag}-{i}"] = time.time()
        admin.sqs.send_message_batch(QueueUrl=res.queue_url, Entries=entries)
    calls: Counter = Counter()
    settings, services = worker_services(endpoint, res, in_flight, device_ms, latency_ms, calls, burst=True)
    started = time.time()
    Worker(services).run()
    done = services.metrics.count("done")
    spans = list(services.metrics.device._spans)
    jobs = job_store(admin, res)
    latencies, finished = [], []
    for job_id, at in sent_at.items():
        record, _ = jobs.read(job_id)
        if record is not None and record.terminal:
            assert isinstance(record, Completed | Failed)
            finished.append(datetime.fromisoformat(record.finished_at).timestamp())
            latencies.append((finished[-1] - at) * 1000)
    # start of the run → the last outcome recorded (burst mode's final empty long poll is not work)
    wall = max(finished) - started if finished else float("nan")
    per_job = {op: c / max(done, 1) for op, c in sorted(calls.items())}
    cost = sum(count * price(op) for op, count in per_job.items())
    return {
        "in_flight": settings.max_in_flight,
        "done": done,
        "wall_s": wall,
        # with the real engine T is what the device meter measured, not a given
        "duty": (services.metrics.device.busy_s if REAL_ENGINE["engine"] else n * device_ms / 1000) / wall,
        "device_ms": services.metrics.device.busy_s / max(done, 1) * 1000,
        # the device's busy share from its first to its last job: the steady state, without start-up and tail
        "busy_share": services.metrics.device.busy_s / (spans[-1][1] - spans[0][0]) if spans else float("nan"),
        "msg_per_s": done / wall,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 20 else float("nan"),
        "requests_per_job": sum(c for op, c in per_job.items() if "(" not in op and op != "dynamodb:write units"),
        "extra_per_job": sum(c for op, c in per_job.items() if "(" in op),
        "per_op": per_job,
        "usd_per_million_jobs": cost,
    }


def low_load(endpoint: str, n: int, in_flight: int | None, device_ms: float, latency_ms: float, tag: str) -> dict:
    """One message at a time (the next is sent once the last one's outcome is recorded): job latency when the
    worker is idle, enqueue → outcome recorded."""
    from consumer.worker.loop import Worker

    admin, res = stack(endpoint, tag)
    calls: Counter = Counter()
    settings, services = worker_services(endpoint, res, in_flight, device_ms, latency_ms, calls, wait_time_s=20)
    worker = Worker(services)
    thread = threading.Thread(target=worker.run)
    thread.start()
    jobs = job_store(admin, res)
    latencies = []
    try:
        for i in range(n + 1):
            job_id = f"{tag}-{i}"
            sent = time.time()
            admin.sqs.send_message(QueueUrl=res.queue_url, MessageBody=body(job_id))
            while not (record := jobs.read(job_id)[0]) or not record.terminal:
                time.sleep(0.005)
            if i:  # the first one loads the voice
                latencies.append((time.time() - sent) * 1000)
    finally:
        worker.stop()
        thread.join()
    return {
        "in_flight": settings.max_in_flight,
        "p50_ms": statistics.median(latencies),
        "p95_ms": statistics.quantiles(latencies, n=20)[-1],
    }


def load_real_engine(size: str, device: str | None):
    """The F5 engine on the F5TTS_v1_Base architecture (or the tiny test variant) with random weights: real
    device work per job, the same as trained weights of that size."""
    import contextlib
    import io

    from consumer.engine.f5 import F5Engine
    from consumer.engine.model_spec import load_model_dir
    from consumer.engine.random_model import ensure_random_model

    engine = F5Engine(load_model_dir(ensure_random_model(Path.home() / ".cache" / "f5-worker", size)), device=device)
    with contextlib.redirect_stderr(io.StringIO()):
        engine.load()
    engine.warm_up()
    return engine


def price(op: str) -> float:
    op = op.split(" (")[0]
    return PRICE_PER_MILLION.get(op, PRICE_PER_MILLION.get(op.split(":")[0], 0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--messages", type=int, default=None, help="default: 15 s of device work (at least 60, at most 400)"
    )
    parser.add_argument("--device-ms", type=float, default=200.0, help="T: device work per job")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="round trip added to every AWS call")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--low-load", type=int, default=20, help="messages sent one at a time (0: skip)")
    parser.add_argument("--real", choices=["tiny", "base"], help="the F5 engine (random weights) instead")
    parser.add_argument("--device", default=None, help="with --real: cuda or cpu (default: cuda if available)")
    args = parser.parse_args()
    if args.real:
        REAL_ENGINE["engine"] = load_real_engine(args.real, args.device)
    n = args.messages or min(400, max(60, round(15_000 / args.device_ms)))
    configure("WARNING", json_lines=False)
    if args.real:
        what = f"the F5 engine ({args.real} random weights, {REAL_ENGINE['engine'].device}): T as measured"
    else:
        what = f"device stand-in {args.device_ms:g} ms/job (ideal {1000 / args.device_ms:.1f} msg/s)"
    print(f"{n} messages, {what}, {args.latency_ms:g} ms per AWS call")
    rows = []
    lows = []
    with moto_server() as endpoint:
        rows.append(("default", run(endpoint, n, None, args.device_ms, args.latency_ms, "default")))
        s3_records = run(endpoint, n, None, args.device_ms, args.latency_ms, "s3rec", records="s3")
        for k in args.in_flight:
            rows.append((f"max_in_flight={k}", run(endpoint, n, k, args.device_ms, args.latency_ms, f"k{k}")))
        if args.low_load:
            for k in (None, 1):
                tag = "low-default" if k is None else f"low-k{k}"
                lows.append(low_load(endpoint, args.low_load, k, args.device_ms, args.latency_ms, tag))
    for name, r in rows:
        ops = ", ".join(f"{op} {c:.2f}" for op, c in r["per_op"].items())
        print(
            f"  {name:18s} (in flight {r['in_flight']!s:>4}, device {r['device_ms']:.0f} ms/job): duty "
            f"{r['duty']:.2f} (busy {r['busy_share']:.2f} "
            f"between first and last job), {r['msg_per_s']:.2f} msg/s, p50 {r['p50_ms']:.0f} ms, "
            f"p95 {r['p95_ms']:.0f} ms, {r['requests_per_job']:.2f} requests/job + {r['extra_per_job']:.2f} "
            f"index/registry writes (${r['usd_per_million_jobs']:.2f} per million jobs): {ops}"
        )
    default = rows[0][1]
    ops = ", ".join(f"{op} {c:.2f}" for op, c in s3_records["per_op"].items())
    print(
        f"  {'default, S3 records':18s} (F5_WORKER_JOBS_TABLE empty): {s3_records['requests_per_job']:.2f} "
        f"requests/job + {s3_records['extra_per_job']:.2f} (${s3_records['usd_per_million_jobs']:.2f} per million "
        f"jobs): {ops}"
    )
    best = max((r for _, r in rows[1:]), key=lambda r: r["duty"])
    print(
        f"best: max_in_flight={best['in_flight']} (duty {best['duty']:.2f}) vs the default "
        f"{default['in_flight']} (duty {default['duty']:.2f})"
    )
    for low in lows:
        print(
            f"low load (one message at a time, {args.low_load}): max_in_flight={low['in_flight']}: "
            f"p50 {low['p50_ms']:.0f} ms, p95 {low['p95_ms']:.0f} ms"
        )
    print(
        f"requests per job at the default: {default['requests_per_job']:.2f} in the budget (receive, claim, "
        f"voice, audio, complete, publish, delete) + {default['extra_per_job']:.2f} jobs-index/registry writes"
    )
    print(
        f"pipeline: duty_default={default['duty']:.2f} duty_best={best['duty']:.2f} "
        f"requests_per_job={default['requests_per_job']:.1f} latency_ms={args.latency_ms:g} "
        f"usd_per_million_jobs={default['usd_per_million_jobs']:.2f} "
        f"usd_per_million_jobs_s3_records={s3_records['usd_per_million_jobs']:.2f}"
    )


if __name__ == "__main__":
    main()
