"""Does `scale simulate` predict the real fleet? Two bursts through real worker processes (the local provider,
the fake engine doing W s of device work per job, the embedded AWS), the controller deciding every second:

1. calibrate: burst A (default 60 jobs, at most 2 workers); measured there: each worker's start-up (created →
   /readyz 200) and the per-job time in the steady state (all workers ready, messages waiting);
2. predict: the simulator, given those two numbers and burst B's policy (default 150 jobs, at most 3 workers),
   predicts B's drain time (first message sent → last completion);
3. measure: burst B runs for real.

Workers take one job at a time (`F5_WORKER_MAX_IN_FLIGHT=1`): the simulator's model of a pod. Default W: 0.5 s.

    .venv/bin/python benchmarks/fleet.py
    .venv/bin/python benchmarks/fleet.py --work-s 1.0 --jobs-a 40 --jobs-b 100 --max-b 4

Last line: `fleet: predicted_drain_s=P measured_drain_s=M error=E` (E = (P - M) / M; goal |E| <= 25 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.aws.clients import make_clients
from consumer.aws.embedded import EmbeddedAws
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.fleet.controller import Controller
from consumer.fleet.lease import ControllerLease
from consumer.fleet.policy import Policy
from consumer.fleet.providers.local import LocalProvider
from consumer.fleet.scenario import AudioLengths, GpuType, Scenario, bursts
from consumer.fleet.simulate import simulate
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.job_index import JobIndex
from contracts.events import SynthesisCompleted, parse_event

WORKER = [sys.executable, "-m", "consumer", "run"]
INTERVAL_S = 1.0


def policy(max_pods: int) -> Policy:
    # The fallback rate sends the fleet to its maximum at once for these bursts; the shrink is quick.
    return Policy(min_pods=0, max_pods=max_pods, target_drain_s=10, fallback_rate_per_pod=1.0, cooldown_s=1,
                  empty_window_s=2, max_changes_per_minute=10)  # fmt: skip


@dataclass
class Measured:
    drain_s: float
    startup_s: list[float]
    per_job_s: float | None


class Stack:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        name = f"fleet{uuid.uuid4().hex[:8]}"
        self.clients = make_clients(Settings(aws_endpoint_url=endpoint))
        self.resources = bootstrap(self.clients, ResourceSpec(name=name, bucket=f"{name}-audio"))
        VoiceLibrary(self.clients.s3, self.resources.bucket).add_example("basic-en")

    def worker_env(self, work_s: float) -> dict[str, str]:
        fields = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "QUEUE_URL": self.resources.queue_url,
            "BUCKET": self.resources.bucket,
            "TOPIC_ARN": self.resources.topic_arn,
            "WAIT_TIME_S": "1",
            "ENGINE": "fake",
            "FAKE_WORK_S": str(work_s),
            "LOG_LEVEL": "WARNING",
            "SHUTDOWN_GRACE_S": "3",
            "MAX_IN_FLIGHT": "1",  # one job at a time per worker: the simulator's model of a pod (the fake
            "BATCH_MAX_SIZE": "1",  # engine has no device lock, so jobs in flight together would overlap)
        }
        return dict(os.environ) | {f"F5_WORKER_{k}": v for k, v in fields.items()}

    def send(self, count: int, tag: str) -> None:
        for first in range(0, count, 10):
            entries = [
                {"Id": str(i), "MessageBody": json.dumps({"job_id": f"{tag}-{i:05d}", "text": "Hello there.",
                                                          "voice": {"voice_id": "basic-en"}})}
                for i in range(first, min(first + 10, count))
            ]  # fmt: skip
            self.clients.sqs.send_message_batch(QueueUrl=self.resources.queue_url, Entries=entries)

    def completions(self) -> list[SynthesisCompleted]:
        response = self.clients.sqs.receive_message(
            QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        out = []
        for message in response.get("Messages", []):
            event = parse_event(message["Body"])
            if isinstance(event, SynthesisCompleted):
                out.append(event)
            self.clients.sqs.delete_message(
                QueueUrl=self.resources.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return out


def run_burst(stack: Stack, jobs: int, max_pods: int, work_s: float, logs: Path, tag: str) -> Measured:
    provider = LocalProvider(f"bench-{tag}-{uuid.uuid4().hex[:4]}", WORKER, env=stack.worker_env(work_s), gpus=[],
                             log_dir=logs)  # fmt: skip
    lease = ControllerLease(stack.clients.s3, stack.resources.bucket, f"fleet/{tag}.json", f"bench-{tag}", ttl_s=10.0)
    controller = Controller(
        policy(max_pods),
        provider,
        sqs=stack.clients.sqs,
        queue_url=stack.resources.queue_url,
        lease=lease,
        index=JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index"),
        interval_s=INTERVAL_S,
    )
    stop = threading.Event()
    started = time.monotonic()
    stack.send(jobs, tag)
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    ready_at: dict[str, float] = {}
    created_at: dict[str, float] = {}
    done_at: list[float] = []
    try:
        while len(done_at) < jobs:
            now = time.monotonic()
            for pod in provider.pods():
                created_at.setdefault(pod.pod_id, now)
                if pod.state == "running":
                    ready_at.setdefault(pod.pod_id, now)
            done_at += [time.monotonic() - started for _ in stack.completions()]
            if now - started > 600:
                raise SystemExit(f"burst {tag}: {len(done_at)} of {jobs} done after 600 s")
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
        provider.close(stop_workers=True)
        while provider.pods():
            time.sleep(0.2)
    startup = [ready_at[p] - created_at[p] for p in ready_at]
    all_ready = max(ready_at.values()) - started
    steady = sorted(t for t in done_at if t > all_ready)
    per_job = None
    if len(steady) > 10:  # the steady state: every worker ready and messages waiting (the tail left out)
        window = steady[-5] - steady[0]
        per_job = len(ready_at) * window / (len(steady) - 5)
    return Measured(max(done_at), startup, per_job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-s", type=float, default=0.5, help="device work per job (fake engine)")
    parser.add_argument("--jobs-a", type=int, default=60)
    parser.add_argument("--max-a", type=int, default=2)
    parser.add_argument("--jobs-b", type=int, default=150)
    parser.add_argument("--max-b", type=int, default=3)
    args = parser.parse_args()
    configure("WARNING", False)
    aws = EmbeddedAws.start()
    logs = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    try:
        stack = Stack(aws.endpoint_url)
        a = run_burst(stack, args.jobs_a, args.max_a, args.work_s, logs, "a")
        if a.per_job_s is None:
            raise SystemExit("burst A had no steady state to measure: raise --jobs-a")
        startup = statistics.mean(a.startup_s)
        print(f"burst A: {args.jobs_a} jobs, max {args.max_a}: drain {a.drain_s:.1f} s; measured start-up "
              f"{startup:.1f} s (n={len(a.startup_s)}), per-job time {a.per_job_s:.3f} s")  # fmt: skip
        scenario = Scenario(
            bursts([(0, args.jobs_b)]),
            duration_s=1,
            gpu=GpuType("calibrated", rtf=a.per_job_s, price_per_hour=0.0),
            startup_s=startup,
            audio=AudioLengths(mean_s=1.0, spread=0.0),
            overhead_s=0.0,
            interval_s=INTERVAL_S,
        )
        predicted = simulate(scenario, policy(args.max_b)).drain_s
        assert predicted is not None
        b = run_burst(stack, args.jobs_b, args.max_b, args.work_s, logs, "b")
        print(f"burst B: {args.jobs_b} jobs, max {args.max_b}: predicted drain {predicted:.1f} s, measured "
              f"{b.drain_s:.1f} s (start-up {statistics.mean(b.startup_s):.1f} s)")  # fmt: skip
        error = (predicted - b.drain_s) / b.drain_s
        print(f"fleet: predicted_drain_s={predicted:.1f} measured_drain_s={b.drain_s:.1f} error={error:+.1%}")
    finally:
        aws.stop()


if __name__ == "__main__":
    main()
