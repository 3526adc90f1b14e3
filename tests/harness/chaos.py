"""Chaos harness: N worker processes on one queue of M jobs against a moto server, while a driver kills
random workers (SIGKILL or SIGTERM) at random points and restarts them, and pauses others (SIGSTOP, then
SIGCONT after longer than the visibility timeout: what a GC pause, a frozen VM or a CUDA hang looks like).
Every request names a webhook that fails a third of its requests. Then it checks that every job has exactly
one audio object (one version in the versioned bucket) whose content matches its request, one distinct
completion event on SNS and on the webhook, no event that contradicts another, nothing stuck in flight and an
empty DLQ.

    .venv/bin/python -m tests.harness.chaos --workers 4 --jobs 500 --kills 150 --pauses 60     # long form
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from consumer.audio.encoding import encode
from consumer.aws.clients import make_clients
from consumer.aws.embedded import EmbeddedAws
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.settings import Settings
from consumer.engine import Reference, SynthesisJob
from consumer.engine.fake import FakeEngine
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.synthesize import seed_for, spoken_text
from contracts.events import SynthesisCompleted, parse_event
from contracts.requests import AudioFormat, SynthesisOptions, SynthesisRequest, VoiceRef
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChaosReport:
    jobs: int
    workers: int
    kills: Counter = field(default_factory=Counter)  # signal name → count
    pauses: int = 0
    contradictory: list[str] = field(default_factory=list)  # jobs with a failed event as well as a completion
    webhook_missing: list[str] = field(default_factory=list)  # jobs whose webhook never accepted the completion
    webhook_posts: int = 0
    webhook_refusals: int = 0  # posts the receiver answered 500 on purpose
    kill_steps: Counter = field(default_factory=Counter)  # step the victim was in → count
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    stuck: int = 0
    dead_lettered: int = 0
    unrecorded_uploads: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def p95_latency_s(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")

    def summary(self) -> str:
        steps = ", ".join(f"{k} {v}" for k, v in sorted(self.kill_steps.items()))
        return (
            f"chaos: jobs={self.jobs} workers={self.workers} kills={sum(self.kills.values())} "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.kills.items()))}; at: {steps}) pauses={self.pauses} "
            f"lost={len(self.lost)} duplicated={len(self.duplicated)} mismatched={len(self.mismatched)} "
            f"contradictory={len(self.contradictory)} webhook_missing={len(self.webhook_missing)} "
            f"webhook_posts={self.webhook_posts} (failed on purpose {self.webhook_refusals}) "
            f"stuck={self.stuck} dlq={self.dead_lettered} p95_latency_s={self.p95_latency_s:.2f} "
            f"killed_between_upload_and_ledger={self.unrecorded_uploads} "
            f"elapsed_s={self.elapsed_s:.1f}"
        )


def expected_sha256(job_id: str, text: str, sample_rate: int = 24_000) -> str:
    """What the fake engine must have produced for this request (content matches the request): its text as
    the worker speaks it (the worker's own normalisation rule) with the seed derived from its job id."""
    reference = Reference(samples=np.zeros(24_000, dtype="float32"), sample_rate=24_000, transcript="x")
    spoken = spoken_text(SynthesisRequest(job_id=job_id, text=text, voice=VoiceRef(voice_id="basic-en")), text)
    audio = FakeEngine().synthesize(SynthesisJob(spoken, reference, SynthesisOptions(), seed_for(job_id)))
    return hashlib.sha256(
        encode(audio.samples, audio.sample_rate, AudioFormat.WAV, out_sample_rate=sample_rate).data
    ).hexdigest()


class Fleet:
    def __init__(self, env: dict[str, str], size: int, log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = [self._spawn(i) for i in range(size)]
        self.paused: set[int] = set()
        self.timers: list[threading.Timer] = []

    def _spawn(self, slot: int) -> subprocess.Popen:
        env = dict(self.env, F5_WORKER_SHUTDOWN_GRACE_S=random.choice(["0", "2"]))
        log = (self.log_dir / f"worker-{slot}.log").open("a")
        return subprocess.Popen(
            [sys.executable, "-m", "tests.harness.chaos_worker"], cwd=ROOT, env=env, stdout=log, stderr=log
        )

    def pause(self, slot: int, seconds: float) -> None:
        """SIGSTOP the worker in `slot`, SIGCONT it `seconds` later (from a timer: the driver goes on)."""
        proc = self.procs[slot]
        proc.send_signal(signal.SIGSTOP)
        self.paused.add(slot)

        def resume() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
            self.paused.discard(slot)

        timer = threading.Timer(seconds, resume)
        timer.start()
        self.timers.append(timer)

    def resume_all(self) -> None:
        for timer in self.timers:
            timer.join()

    def kill(self, slot: int, sig: signal.Signals) -> int:
        proc = self.procs[slot]
        pid = proc.pid
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.procs[slot] = self._spawn(slot)
        return pid

    def working(self, ledger: Path) -> list[int]:
        """Slots whose worker has started polling (kills during start-up tell us little)."""
        text = ledger.read_text() if ledger.exists() else ""
        ready = {json.loads(line)["pid"] for line in text.splitlines() if '"ready"' in line}
        return [i for i, proc in enumerate(self.procs) if proc.pid in ready]

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _last_step(ledger: Path, pid: int) -> str:
    """Where the worker `pid` was when killed, from the last ledger line it wrote."""
    names = {
        "ready": "polling",
        "claim": "synthesizing",
        "upload": "after upload",
        "complete": "recording result",
        "publish": "publishing",
        "delete": "deleting after publish",
    }
    step = "polling"
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        entry = json.loads(line)
        if entry["pid"] == pid:
            step = names[entry.get("step", entry["kind"])]
    return step


def run_chaos(
    workers: int = 3,
    jobs: int = 30,
    kills: int = 10,
    seed: int = 0,
    work_s: float = 1.0,
    timeout_s: float = 600.0,
    pauses: int = 0,
) -> ChaosReport:
    random.seed(seed)
    started = time.monotonic()
    report = ChaosReport(jobs=jobs, workers=workers)
    aws = EmbeddedAws.start()
    workdir = Path(tempfile.mkdtemp(prefix="f5-chaos-"))
    ledger = workdir / "ledger.jsonl"
    try:
        settings = Settings(aws_endpoint_url=aws.endpoint_url)
        clients = make_clients(settings)
        # Kills count as receives: a generous maxReceiveCount keeps chaos from dead-lettering healthy jobs.
        res = bootstrap(
            clients, ResourceSpec(name="chaos", bucket="chaos-audio", visibility_timeout_s=4, max_receive_count=25)
        )
        # Versioned: a second upload of a job's audio cannot hide behind the first one's key.
        clients.s3.put_bucket_versioning(Bucket=res.bucket, VersioningConfiguration={"Status": "Enabled"})
        VoiceLibrary(clients.s3, res.bucket).add_example("basic-en")
        receiver = Receiver(answer=lambda n: 500 if n % 3 == 0 else 200)  # fails a third of its requests
        texts = {f"chaos-{i:04d}": f"Chaos job number {i}, {'spoken ' * (i % 5)}clearly." for i in range(jobs)}
        sent_at = {}
        for job_id, text in texts.items():
            body = {
                "job_id": job_id,
                "text": text,
                "voice": {"voice_id": "basic-en"},
                "notify": {"webhook_url": receiver.url},
            }
            clients.sqs.send_message(QueueUrl=res.queue_url, MessageBody=json.dumps(body))
            sent_at[job_id] = time.time()
        env = dict(os.environ)
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "CHAOS_LEDGER": str(ledger),
                "F5_WORKER_AWS_ENDPOINT_URL": aws.endpoint_url,
                "F5_WORKER_QUEUE_URL": res.queue_url,
                "F5_WORKER_BUCKET": res.bucket,
                "F5_WORKER_TOPIC_ARN": res.topic_arn,
                "F5_WORKER_ENGINE": "fake",
                "F5_WORKER_FAKE_WORK_S": str(work_s),
                "F5_WORKER_VISIBILITY_TIMEOUT_S": "4",
                "F5_WORKER_HEARTBEAT_INTERVAL_S": "1",
                "F5_WORKER_WAIT_TIME_S": "1",
                "F5_WORKER_RETRY_BASE_DELAY_S": "0",
                "F5_WORKER_RETRY_MAX_DELAY_S": "1",
                "F5_WORKER_LOG_LEVEL": "WARNING",
                "F5_WORKER_WEBHOOK_ALLOW_PRIVATE": "true",
                "F5_WORKER_WEBHOOK_INLINE_ATTEMPTS": "2",
                "F5_WORKER_WEBHOOK_RETRY_BASE_S": "1",
                "F5_WORKER_WEBHOOK_TIMEOUT_S": "2",
                "PYTHONPATH": str(ROOT),
            }
        )
        fleet = Fleet(env, workers, workdir)
        events: dict[str, set[str]] = defaultdict(set)
        failures: set[str] = set()
        finished_at: dict[str, float] = {}

        def drain() -> None:
            while True:
                got = clients.sqs.receive_message(
                    QueueUrl=res.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not got:
                    return
                for m in got:
                    event = parse_event(m["Body"])
                    if isinstance(event, SynthesisCompleted):
                        events[event.job_id].add(event.event_id)
                        finished_at.setdefault(event.job_id, time.time())
                    else:
                        failures.add(event.job_id)
                    clients.sqs.delete_message(QueueUrl=res.events_queue_url, ReceiptHandle=m["ReceiptHandle"])

        actions = ["kill"] * kills + ["pause"] * pauses
        random.shuffle(actions)
        for action in actions:
            time.sleep(random.uniform(0.3, 0.9))
            while not (candidates := [s for s in fleet.working(ledger) if s not in fleet.paused]):
                time.sleep(0.2)
            slot = random.choice(candidates)
            if action == "pause":
                fleet.pause(slot, random.uniform(5.0, 8.0))  # past the 4 s visibility timeout
                report.pauses += 1
                continue
            sig = random.choice([signal.SIGKILL, signal.SIGTERM])
            pid = fleet.procs[slot].pid
            step = _last_step(ledger, pid)
            fleet.kill(slot, sig)
            report.kills[sig.name] += 1
            report.kill_steps[step] += 1
            drain()
        fleet.resume_all()
        deadline = time.monotonic() + timeout_s

        def webhooked() -> set[str]:
            return {e["job_id"] for e in receiver.accepted() if e["type"] == "synthesis.completed.v1"}

        while (len(finished_at) < jobs or len(webhooked()) < jobs) and time.monotonic() < deadline:
            drain()
            time.sleep(0.5)
        time.sleep(2)
        drain()
        fleet.stop()
        receiver.close()
        posts = receiver.received()
        report.webhook_posts, report.webhook_refusals = len(posts), sum(s >= 300 for s in receiver.statuses)
        posted_ids: dict[str, set[str]] = defaultdict(set)
        for post in posts:
            posted_ids[post["job_id"]].add(post["event_id"])
            if post["type"] != "synthesis.completed.v1":
                failures.add(post["job_id"])

        uploads = Counter(
            json.loads(line)["key"] for line in ledger.read_text().splitlines() if json.loads(line)["kind"] == "upload"
        )
        for job_id, text in texts.items():
            key = f"outputs/{job_id}.wav"
            versions = clients.s3.list_object_versions(Bucket=res.bucket, Prefix=key).get("Versions", [])
            if len([v for v in versions if v["Key"] == key]) > 1:
                report.duplicated.append(f"{job_id}: {len(versions)} audio versions")
            if job_id in failures or len(posted_ids.get(job_id, ())) > 1:
                report.contradictory.append(job_id)
            if job_id not in webhooked():
                report.webhook_missing.append(job_id)
            try:
                body = clients.s3.get_object(Bucket=res.bucket, Key=key)["Body"].read()
            except clients.s3.exceptions.NoSuchKey:
                report.lost.append(job_id)
                continue
            if not events.get(job_id):
                report.lost.append(job_id)
            # More than one upload = a second synthesis reached S3. Zero is possible: a worker killed after
            # S3 stored its upload but before its ledger line; the next attempt then reuses that object.
            if uploads[key] > 1 or len(events.get(job_id, ())) > 1:
                report.duplicated.append(job_id)
            if uploads[key] == 0:
                report.unrecorded_uploads += 1
            if hashlib.sha256(body).hexdigest() != expected_sha256(job_id, text):
                report.mismatched.append(job_id)
            if job_id in finished_at:
                report.latencies.append(finished_at[job_id] - sent_at[job_id])
        listed = clients.s3.list_objects_v2(Bucket=res.bucket, Prefix="outputs/").get("KeyCount", 0)
        if listed != jobs:
            report.duplicated.append(f"{listed} audio objects for {jobs} jobs")
        for url in (res.queue_url,):
            attrs = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            report.stuck = int(attrs["ApproximateNumberOfMessages"]) + int(
                attrs["ApproximateNumberOfMessagesNotVisible"]
            )
        dlq = clients.sqs.get_queue_attributes(QueueUrl=res.dlq_url, AttributeNames=["All"])["Attributes"]
        report.dead_lettered = int(dlq["ApproximateNumberOfMessages"]) + int(
            dlq["ApproximateNumberOfMessagesNotVisible"]
        )
    finally:
        aws.stop()
    report.elapsed_s = time.monotonic() - started
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--pauses", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-s", type=float, default=1.0)
    args = parser.parse_args()
    report = run_chaos(args.workers, args.jobs, args.kills, args.seed, args.work_s, pauses=args.pauses)
    print(report.summary())
    bad = (
        report.lost
        or report.duplicated
        or report.mismatched
        or report.contradictory
        or report.webhook_missing
        or report.stuck
        or report.dead_lettered
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
