"""Chaos harness: N worker processes on one queue of M jobs against a moto server, while a driver kills
random workers (SIGKILL or SIGTERM) at random points and restarts them, and pauses others (SIGSTOP, then
SIGCONT after longer than the visibility timeout: what a GC pause, a frozen VM or a CUDA hang looks like).
Every request names a webhook that fails a third of its requests. Then it checks that every job has exactly
one audio object (one version in the versioned bucket) whose content matches its request, one distinct
completion event on SNS and on the webhook, no event that contradicts another, nothing stuck in flight and an
empty DLQ.

Pause chaos (`--pause-chaos`, `failures_allowed=True`): many pauses past the visibility timeout and a small
maxReceiveCount, so a job can use up its receives on deferrals and abandoned attempts and reach the DLQ. A job
may then end FAILED (retries exhausted); what must hold is that every job ends with an outcome that is both
recorded (record COMPLETED or FAILED) and published (a completed or failed event), and that every job whose
message is in the DLQ has a FAILED record and its failure published (or a COMPLETED one and its completion: a
finished job's delete held up by a pause past its last receive). Every job's final record, events and DLQ
state are reported, and every receive's exit, counted from the workers' own `job_finished` log lines.

    .venv/bin/python -m tests.harness.chaos --workers 4 --jobs 500 --kills 150 --pauses 60     # long form
    python -m tests.harness.chaos --pause-chaos --jobs 60 --kills 0 --pauses 36 --max-receive-count 10 --work-s 2
    python -m tests.harness.chaos --stream --jobs 40 --kills 20 --work-s 2    # readers follow streamed jobs

Streamed (`--stream`): every request asks for `output.stream`, and a reader follows each job from its sending
to its end, through the kills; each must end with the whole audio (the final object's samples) or raise a
clear error, never return a truncated file.
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
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from consumer.audio.encoding import encode
from consumer.aws.clients import make_clients
from consumer.aws.embedded import EMULATOR_CREDENTIALS, EmbeddedAws
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.settings import Settings
from consumer.engine import Reference, SynthesisJob
from consumer.engine.fake import FakeEngine
from consumer.producer.client import Client
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.job_record import Failed
from consumer.storage.jobs import JobStore
from consumer.storage.record_backends import records_for
from consumer.worker.synthesize import seed_for, spoken_text
from contracts.events import SynthesisCompleted, parse_event
from contracts.requests import AudioFormat, SynthesisOptions, SynthesisRequest, VoiceRef
from contracts.tasks import KIND_ATTRIBUTE
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
RECEIVE_OUTCOMES = ("done", "replayed", "failed", "retry", "deferred", "returned", "abandoned")  # job.Outcome


@dataclass
class JobOutcome:
    """How one job ended: its record, what was published for it, and whether its message was dead-lettered."""

    record: str | None = None  # the record's status; None: never claimed
    error_code: str | None = None  # a FAILED record's failure code
    completed: bool = False  # a synthesis.completed.v1 reached the events queue (SNS)
    failed: bool = False  # a synthesis.failed.v1 did
    dead_lettered: bool = False  # its request message is in the DLQ

    @property
    def published(self) -> bool:
        return self.completed or self.failed

    @property
    def told(self) -> bool:
        """The record holds an outcome and its event was published."""
        return (self.record == "FAILED" and self.failed) or (self.record == "COMPLETED" and self.completed)

    @property
    def dead_but_unrecorded(self) -> bool:
        """In the DLQ without a told outcome: no FAILED record with its failure published. A COMPLETED job
        whose message still reached the DLQ (its delete held up by a pause) has told its outcome: not counted."""
        return self.dead_lettered and not self.told

    def describe(self) -> str:
        events = "+".join(kind for kind, seen in (("completed", self.completed), ("failed", self.failed)) if seen)
        code = f"({self.error_code})" if self.error_code else ""
        return f"record={self.record}{code} events={events or 'none'} dlq={'yes' if self.dead_lettered else 'no'}"


@dataclass
class ReceiveLog:
    """Every receive as the workers logged it: `job_finished` lines by outcome, and each job's exits in time
    order (`w{slot}:{outcome}@{attempt}`)."""

    outcomes: Counter = field(default_factory=Counter)
    histories: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))

    def deferrals(self) -> Counter:
        return Counter({job: sum(":deferred@" in step for _, step in steps) for job, steps in self.histories.items()})

    def history(self, job_id: str) -> str:
        return " ".join(step for _, step in sorted(self.histories.get(job_id, [])))


def read_receive_log(log_dir: Path) -> ReceiveLog:
    """Parse the workers' JSON log lines. An attempt's receive count is its `job_finished` line's
    `receive_count` (see `chaos_worker`), else the attempt last logged for that job in that worker's file."""
    log = ReceiveLog()
    for path in sorted(log_dir.glob("worker-*.log")):
        slot = path.stem.removeprefix("worker-")
        attempts: dict[str, Any] = {}
        for entry in _json_lines(path):
            job_id = entry.get("job_id")
            if job_id is None:
                continue
            if "attempt" in entry:
                attempts[job_id] = entry["attempt"]
            if entry.get("event") == "job_finished":
                log.outcomes[entry["outcome"]] += 1
                attempt = entry.get("receive_count", attempts.get(job_id, "?"))
                step = f"w{slot}:{entry['outcome']}@{attempt}"
                log.histories[job_id].append((entry.get("timestamp", ""), step))
    return log


def _json_lines(path: Path) -> list[dict]:
    """The JSON lines of a log (a SIGKILL can cut the last one; tracebacks are not JSON)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


@dataclass
class ChaosReport:
    jobs: int
    workers: int
    failures_allowed: bool = False  # pause chaos: a job may end FAILED, if recorded and published
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
    stuck: int = 0  # requests whose job has no outcome, left on the queue once every worker stopped
    leftover: int = 0  # messages left that only replay a finished job or retry a delivery (see _left_on_queue)
    dead_lettered: int = 0
    unrecorded_uploads: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    outcomes: dict[str, JobOutcome] = field(default_factory=dict)  # job id → how it ended
    no_outcome: list[str] = field(default_factory=list)  # neither a completed nor a failed event
    dead_unrecorded: list[str] = field(default_factory=list)  # in the DLQ without a recorded, published outcome
    receives: ReceiveLog = field(default_factory=ReceiveLog)
    workdir: str = ""  # the workers' logs and the ledger, kept for a post-mortem
    # streamed jobs (`stream=True`): what each job's reader got, read while the chaos ran
    streams_whole: int = 0  # readers whose bytes are the final object's (a WAV's header sizes aside)
    stream_errors: dict[str, str] = field(default_factory=dict)  # job → the error its reader raised
    stream_truncated: list[str] = field(default_factory=list)  # readers that ended normally with other bytes

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
            f"stuck={self.stuck} leftover={self.leftover} dlq={self.dead_lettered} "
            f"p95_latency_s={self.p95_latency_s:.2f} "
            f"killed_between_upload_and_ledger={self.unrecorded_uploads} "
            f"{self.outcome_summary()} {self.stream_summary()}elapsed_s={self.elapsed_s:.1f}"
        )

    def stream_summary(self) -> str:
        if not (self.streams_whole or self.stream_errors or self.stream_truncated):
            return ""
        return (
            f"streams: whole={self.streams_whole} errors={len(self.stream_errors)} "
            f"truncated={len(self.stream_truncated)} "
        )

    def outcome_summary(self) -> str:
        records = Counter(o.record or "none" for o in self.outcomes.values())
        counts = self.receives.outcomes
        total = sum(counts.values())
        share = counts["deferred"] / total if total else 0.0
        most = max(self.receives.deferrals().values(), default=0)
        return (
            f"records=({', '.join(f'{k} {v}' for k, v in sorted(records.items()))}) "
            f"no_outcome={len(self.no_outcome)} dead_unrecorded={len(self.dead_unrecorded)} "
            f"dead_completed={sum(o.dead_lettered and o.record == 'COMPLETED' for o in self.outcomes.values())} "
            f"receives={total} ({', '.join(f'{k} {counts[k]}' for k in RECEIVE_OUTCOMES)}) "
            f"deferred_share={share:.0%} max_deferrals_per_job={most}"
        )

    def histories(self) -> list[str]:
        """One line per job worth a look: those that broke a rule or ended FAILED or in the DLQ, and (three of)
        those deferred the most."""
        deferrals = self.receives.deferrals()
        most = max(deferrals.values(), default=0)
        flagged = set(self.no_outcome + self.dead_unrecorded + self.contradictory + self.lost)
        flagged |= {job for job, o in self.outcomes.items() if o.record == "FAILED" or o.dead_lettered}
        flagged |= set(sorted(job for job, n in deferrals.items() if n == most and most > 0)[:3])
        return [
            f"{job}: {self.outcomes[job].describe()} receives: {self.receives.history(job)}"
            for job in sorted(flagged)
            if job in self.outcomes
        ]

    def problems(self) -> list[str]:
        """The checks that failed (empty: the run holds every promise of its mode)."""
        checks = {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "mismatched": self.mismatched,
            "contradictory": self.contradictory,
            "webhook_missing": self.webhook_missing,
            "no_outcome": self.no_outcome,
            "dead_unrecorded": self.dead_unrecorded,
            "stuck": self.stuck,
            "dlq": 0 if self.failures_allowed else self.dead_lettered,
            "stream_truncated": self.stream_truncated,
        }
        return [name for name, value in checks.items() if value]


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
        with (self.log_dir / f"worker-{slot}.log").open("a") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "tests.harness.chaos_worker"], cwd=ROOT, env=env, stdout=log, stderr=log
            )

    def pause(self, slot: int, seconds: float) -> None:
        """SIGSTOP the worker in `slot`, SIGCONT it `seconds` later (from a timer: the driver goes on)."""
        proc = self.procs[slot]
        proc.send_signal(signal.SIGSTOP)
        self.paused.add(slot)
        self._note(f"pause w{slot} pid {proc.pid} for {seconds:.1f}s")

        def resume() -> None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
            self.paused.discard(slot)

        timer = threading.Timer(seconds, resume)
        timer.start()
        self.timers.append(timer)

    def _note(self, action: str) -> None:
        """The driver's actions with their times (UTC, as in the workers' logs), for a post-mortem."""
        with (self.log_dir / "driver.log").open("a") as f:
            f.write(f"{datetime.now(UTC).isoformat()} {action}\n")

    def resume_all(self) -> None:
        for timer in self.timers:
            timer.join()

    def kill(self, slot: int, sig: signal.Signals) -> int:
        proc = self.procs[slot]
        pid = proc.pid
        proc.send_signal(sig)
        self._note(f"{sig.name} w{slot} pid {pid}")
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

    def abort(self) -> None:
        """SIGKILL whatever still runs (a stopped process too): a run that failed leaves no workers behind."""
        for timer in self.timers:
            timer.cancel()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

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


@dataclass
class Observed:
    """What the harness saw from outside the workers: SNS events, webhook posts, the ledger's uploads."""

    completions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # job → event ids (SNS)
    failures: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # job → event ids (SNS)
    finished_at: dict[str, float] = field(default_factory=dict)  # job → first completion seen
    posted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # job → webhook event ids
    posted_failures: set[str] = field(default_factory=set)  # jobs whose webhook got a failed event
    accepted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # event type → jobs (2xx)
    uploads: Counter = field(default_factory=Counter)  # audio key → uploads the ledger saw reach S3

    def take_event(self, body: str) -> None:
        event = parse_event(body)
        if isinstance(event, SynthesisCompleted):
            self.completions[event.job_id].add(event.event_id)
            self.finished_at.setdefault(event.job_id, time.time())
        else:
            self.failures[event.job_id].add(event.event_id)

    def take_webhook(self, receiver: Receiver) -> None:
        for post in receiver.received():
            self.posted[post["job_id"]].add(post["event_id"])
            if post["type"] != "synthesis.completed.v1":
                self.posted_failures.add(post["job_id"])
        self.accepted = webhook_accepted(receiver)

    def told(self) -> set[str]:
        """Jobs with a published outcome, completed or failed."""
        return {job for job, ids in (*self.completions.items(), *self.failures.items()) if ids}


def webhook_accepted(receiver: Receiver) -> dict[str, set[str]]:
    """Event type → the jobs whose webhook answered 2xx to an event of that type."""
    accepted: dict[str, set[str]] = defaultdict(set)
    for event in receiver.accepted():
        accepted[event["type"]].add(event["job_id"])
    return accepted


def _contradicts(report: ChaosReport, seen: Observed, job_id: str) -> bool:
    """Strict mode: any failure is a contradiction. Pause chaos: one outcome, and it agrees with the record."""
    failed = bool(seen.failures.get(job_id)) or job_id in seen.posted_failures
    if len(seen.posted.get(job_id, ())) > 1 or len(seen.failures.get(job_id, ())) > 1:
        return True
    if not report.failures_allowed:
        return failed
    completed = bool(seen.completions.get(job_id))
    record = report.outcomes[job_id].record
    return (completed and failed) or (completed and record == "FAILED") or (failed and record == "COMPLETED")


def _webhook_missing(report: ChaosReport, seen: Observed, job_id: str) -> bool:
    """Strict mode: the webhook never accepted the completion. Pause chaos: it never accepted any outcome."""
    if not report.failures_allowed:
        return job_id not in seen.accepted["synthesis.completed.v1"]
    return not any(job_id in jobs for jobs in seen.accepted.values())


def _check_job(report: ChaosReport, seen: Observed, s3: Any, bucket: str, job_id: str, text: str) -> None:
    key = f"outputs/{job_id}.wav"
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    if len([v for v in versions if v["Key"] == key]) > 1:
        report.duplicated.append(f"{job_id}: {len(versions)} audio versions")
    if _contradicts(report, seen, job_id):
        report.contradictory.append(job_id)
    if _webhook_missing(report, seen, job_id):
        report.webhook_missing.append(job_id)
    if report.failures_allowed and not seen.completions.get(job_id):
        if not report.outcomes[job_id].published:
            report.lost.append(job_id)
        return  # ended FAILED: no audio is promised (a paused attempt may have uploaded some)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        report.lost.append(job_id)
        return
    if not seen.completions.get(job_id):
        report.lost.append(job_id)
    # More than one upload = a second synthesis reached S3. Zero is possible: a worker killed after
    # S3 stored its upload but before its ledger line; the next attempt then reuses that object.
    if seen.uploads[key] > 1 or len(seen.completions.get(job_id, ())) > 1:
        report.duplicated.append(job_id)
    if seen.uploads[key] == 0:
        report.unrecorded_uploads += 1
    if hashlib.sha256(body).hexdigest() != expected_sha256(job_id, text):
        report.mismatched.append(job_id)


def _follow(client: Client, job_id: str, timeout_s: float, into: dict[str, bytes | BaseException]) -> threading.Thread:
    """A reader of one streamed job, from before any worker took it, in a thread."""

    def read() -> None:
        try:
            into[job_id] = b"".join(client.stream(job_id, timeout_s=timeout_s))
        except Exception as exc:  # what the reader raised is the finding
            into[job_id] = exc

    thread = threading.Thread(target=read, name=f"reader-{job_id}", daemon=True)
    thread.start()
    return thread


def _check_streams(report: ChaosReport, streamed: dict[str, bytes | BaseException], s3: Any, bucket: str) -> None:
    """Each reader ended with the whole audio (the final object's samples) or with a clear error."""
    for job_id, got in sorted(streamed.items()):
        if isinstance(got, BaseException):
            report.stream_errors[job_id] = f"{type(got).__name__}: {got}"
            continue
        try:
            final = s3.get_object(Bucket=bucket, Key=f"outputs/{job_id}.wav")["Body"].read()
        except Exception:  # no final object: whatever the reader returned is not the audio
            final = b""
        if got[44:] == final[44:] and len(got) > 44:  # a WAV: the stream's header says "size unknown"
            report.streams_whole += 1
        else:
            report.stream_truncated.append(f"{job_id}: {len(got)} bytes streamed, {len(final)} in the object")


def _batches(items: list[str], n: int) -> list[list[str]]:
    """`items` in `n` consecutive batches of (nearly) equal size."""
    return [items[i * len(items) // n : (i + 1) * len(items) // n] for i in range(n)]


def _left_on_queue(sqs: Any, url: str, visibility_s: int, store: JobStore) -> tuple[int, int]:
    """(stuck, leftover) once every worker has stopped. Stuck: a request whose job has no outcome. Leftover:
    what only replays or retries a delivery: a request whose job is finished (its delete was lost with a
    killed worker's delete batch, and no worker was left to replay it) or a delivery retry that came due after
    the workers stopped (whether every webhook accepted is checked apart)."""
    counts = _queue_counts(sqs, url)
    if counts["ApproximateNumberOfMessages"] + counts["ApproximateNumberOfMessagesNotVisible"] == 0:
        return 0, 0
    if counts["ApproximateNumberOfMessagesNotVisible"]:
        time.sleep(visibility_s + 1)  # held when the workers stopped: visible again by now
    stuck = leftover = 0
    while got := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60, MessageAttributeNames=["All"]
    ).get("Messages", []):
        for message in got:
            if KIND_ATTRIBUTE in message.get("MessageAttributes", {}):
                leftover += 1
                continue
            record, _ = store.read(json.loads(message["Body"])["job_id"])
            finished = record is not None and record.terminal
            leftover, stuck = (leftover + 1, stuck) if finished else (leftover, stuck + 1)
    return stuck, leftover


def _queue_counts(sqs: Any, url: str) -> dict[str, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    names = (
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    )
    return {name: int(attrs.get(name, 0)) for name in names}


def _dead_lettered_jobs(sqs: Any, dlq_url: str, wait_s: float = 30.0) -> set[str]:
    """Job ids of the requests in the DLQ (queued webhook tasks, with a `kind`, are not requests). Called once
    the workers are stopped: it waits up to `wait_s` for messages a worker was reading to be visible again, then
    receives each once, hidden for longer than the rest of the run."""
    deadline = time.monotonic() + wait_s
    while _queue_counts(sqs, dlq_url)["ApproximateNumberOfMessagesNotVisible"] and time.monotonic() < deadline:
        time.sleep(0.5)
    found: set[str] = set()
    while got := sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=600, WaitTimeSeconds=0
    ).get("Messages", []):
        for message in got:
            body = json.loads(message["Body"])
            if "kind" not in body:
                found.add(body["job_id"])
    return found


def _job_outcome(store: JobStore, seen: Observed, dead: set[str], job_id: str) -> JobOutcome:
    record, _ = store.read(job_id)
    return JobOutcome(
        record=record.status.value if record else None,
        error_code=record.failure.error_code if isinstance(record, Failed) else None,
        completed=bool(seen.completions.get(job_id)),
        failed=bool(seen.failures.get(job_id)),
        dead_lettered=job_id in dead,
    )


def _worker_env(aws: EmbeddedAws, res: Any, ledger: Path, work_s: float, visibility_s: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            **EMULATOR_CREDENTIALS,
            "CHAOS_LEDGER": str(ledger),
            "F5_WORKER_AWS_ENDPOINT_URL": aws.endpoint_url,
            "F5_WORKER_QUEUE_URL": res.queue_url,
            "F5_WORKER_BUCKET": res.bucket,
            "F5_WORKER_TOPIC_ARN": res.topic_arn,
            "F5_WORKER_JOBS_TABLE": res.jobs_table,
            "F5_WORKER_ENGINE": "fake",
            "F5_WORKER_FAKE_WORK_S": str(work_s),
            "F5_WORKER_VISIBILITY_TIMEOUT_S": str(visibility_s),
            "F5_WORKER_HEARTBEAT_INTERVAL_S": "1",
            "F5_WORKER_WAIT_TIME_S": "1",
            "F5_WORKER_RETRY_BASE_DELAY_S": "0",
            "F5_WORKER_RETRY_MAX_DELAY_S": "1",
            "F5_WORKER_DEAD_LETTER_CHECK_S": "2",  # the DLQ watch, scaled down with the visibility
            "F5_WORKER_LOG_LEVEL": "INFO",  # every receive's `job_finished` line, for `ReceiveLog`
            "F5_WORKER_WEBHOOK_ALLOW_PRIVATE": "true",
            "F5_WORKER_WEBHOOK_INLINE_ATTEMPTS": "2",
            "F5_WORKER_WEBHOOK_RETRY_BASE_S": "1",
            "F5_WORKER_WEBHOOK_TIMEOUT_S": "2",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def run_chaos(
    workers: int = 3,
    jobs: int = 30,
    kills: int = 10,
    seed: int = 0,
    work_s: float = 1.0,
    timeout_s: float = 600.0,
    pauses: int = 0,
    *,
    visibility_s: int = 4,
    pause_s: tuple[float, float] = (5.0, 8.0),
    max_receive_count: int = 25,
    failures_allowed: bool = False,
    settle_s: float = 30.0,
    spread_jobs: bool = False,
    jobs_table: bool = False,
    stream: bool = False,
) -> ChaosReport:
    """`pause_s`: how long each SIGSTOP lasts (past `visibility_s` to matter). `failures_allowed` (pause
    chaos): a job may end FAILED, as long as that is recorded and published; otherwise every job completes.
    `settle_s` (pause chaos): how long an empty request queue is watched for outcomes still to be told (a
    dead-lettered job's); a job never told ends the run after that instead of at `timeout_s`. `spread_jobs`:
    the jobs are sent in batches, one before each of the driver's actions, instead of all at once, so that the
    chaos meets work in flight however quickly the workers get through it. `jobs_table`: job records in a
    DynamoDB table (F5_WORKER_JOBS_TABLE), as the infrastructure template deploys them, instead of S3. `stream`:
    every request asks for `output.stream` and a reader (`Client.stream`) follows each job from its sending on,
    through the kills: it must end with the whole audio or raise, never return a truncated one."""
    random.seed(seed)
    started = time.monotonic()
    report = ChaosReport(jobs=jobs, workers=workers, failures_allowed=failures_allowed)
    aws = EmbeddedAws.start()
    workdir = Path(tempfile.mkdtemp(prefix="f5-chaos-"))
    report.workdir = str(workdir)
    ledger = workdir / "ledger.jsonl"
    fleet: Fleet | None = None
    try:
        settings = Settings(aws_endpoint_url=aws.endpoint_url)
        clients = make_clients(settings)
        # Kills count as receives: a generous maxReceiveCount keeps chaos from dead-lettering healthy jobs
        # (pause chaos lowers it on purpose, so that jobs can use their receives up).
        # Names of their own: moto's state outlives its server in this process (a second run, the test suite).
        name = f"chaos-{uuid.uuid4().hex[:8]}"
        spec = ResourceSpec(
            name=name,
            bucket=f"{name}-audio",
            visibility_timeout_s=visibility_s,
            max_receive_count=max_receive_count,
            jobs_table=jobs_table,
        )
        res = bootstrap(clients, spec)
        # Versioned: a second upload of a job's audio cannot hide behind the first one's key.
        clients.s3.put_bucket_versioning(Bucket=res.bucket, VersioningConfiguration={"Status": "Enabled"})
        VoiceLibrary(clients.s3, res.bucket).add_example("basic-en")
        receiver = Receiver(answer=lambda n: 500 if n % 3 == 0 else 200)  # fails a third of its requests
        texts = {f"chaos-{i:04d}": f"Chaos job number {i}, {'spoken ' * (i % 5)}clearly." for i in range(jobs)}
        sent_at: dict[str, float] = {}
        records = records_for(clients, settings.model_copy(update={"bucket": res.bucket, "jobs_table": res.jobs_table}))
        reader_client = Client(clients, res.queue_url, res.bucket, records=records)
        readers: list[threading.Thread] = []
        streamed: dict[str, bytes | BaseException] = {}

        def send(batch: list[str]) -> None:
            for job_id in batch:
                body = {
                    "job_id": job_id,
                    "text": texts[job_id],
                    "voice": {"voice_id": "basic-en"},
                    "notify": {"webhook_url": receiver.url},
                }
                if stream:
                    body["output"] = {"stream": True}
                clients.sqs.send_message(QueueUrl=res.queue_url, MessageBody=json.dumps(body))
                sent_at[job_id] = time.time()
                if stream:
                    readers.append(_follow(reader_client, job_id, timeout_s, streamed))

        actions = ["kill"] * kills + ["pause"] * pauses
        batches = _batches(list(texts), len(actions) + 1 if spread_jobs else 1)
        send(batches[0])
        fleet = Fleet(_worker_env(aws, res, ledger, work_s, visibility_s), workers, workdir)
        seen = Observed()

        def drain() -> None:
            while True:
                got = clients.sqs.receive_message(
                    QueueUrl=res.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not got:
                    return
                for m in got:
                    seen.take_event(m["Body"])
                    clients.sqs.delete_message(QueueUrl=res.events_queue_url, ReceiptHandle=m["ReceiptHandle"])

        random.shuffle(actions)
        for i, action in enumerate(actions, start=1):
            send(batches[i] if i < len(batches) else [])
            time.sleep(random.uniform(0.3, 0.9))
            while not (candidates := [s for s in fleet.working(ledger) if s not in fleet.paused]):
                time.sleep(0.2)
            slot = random.choice(candidates)
            if action == "pause":
                fleet.pause(slot, random.uniform(*pause_s))
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
        idle_since: float | None = None  # pause chaos: since when the request queue has held nothing at all

        def pending() -> bool:
            if not failures_allowed:
                webhooked = webhook_accepted(receiver)["synthesis.completed.v1"]
                return len(seen.finished_at) < jobs or len(webhooked) < jobs
            # A job may end in the DLQ, its outcome told later (or never): an empty queue is watched `settle_s`.
            told_webhooks = set().union(*webhook_accepted(receiver).values())
            settled = idle_since is not None and time.monotonic() - idle_since > settle_s
            return (len(seen.told()) < jobs or len(told_webhooks) < jobs) and not settled

        while pending() and time.monotonic() < deadline:
            drain()
            time.sleep(0.5)
            if failures_allowed:
                idle = not any(_queue_counts(clients.sqs, res.queue_url).values())
                idle_since = (idle_since or time.monotonic()) if idle else None
        time.sleep(2)
        drain()
        for thread in readers:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
        fleet.stop()
        receiver.close()
        report.webhook_posts, report.webhook_refusals = (
            len(receiver.received()),
            sum(s >= 300 for s in receiver.statuses),
        )
        seen.take_webhook(receiver)
        seen.uploads = Counter(
            json.loads(line)["key"] for line in ledger.read_text().splitlines() if json.loads(line)["kind"] == "upload"
        )
        store = JobStore(clients.s3, res.bucket, settings.jobs_prefix, records=records)
        _check_streams(report, streamed, clients.s3, res.bucket)
        report.stuck, report.leftover = _left_on_queue(clients.sqs, res.queue_url, visibility_s, store)
        dlq = _queue_counts(clients.sqs, res.dlq_url)
        report.dead_lettered = dlq["ApproximateNumberOfMessages"] + dlq["ApproximateNumberOfMessagesNotVisible"]
        dead = _dead_lettered_jobs(clients.sqs, res.dlq_url)
        report.outcomes = {job_id: _job_outcome(store, seen, dead, job_id) for job_id in texts}
        report.no_outcome = [job for job, o in report.outcomes.items() if not o.published]
        report.dead_unrecorded = [job for job, o in report.outcomes.items() if o.dead_but_unrecorded]
        for job_id, text in texts.items():
            _check_job(report, seen, clients.s3, res.bucket, job_id, text)
            if job_id in seen.finished_at:
                report.latencies.append(seen.finished_at[job_id] - sent_at[job_id])
        listed = clients.s3.list_objects_v2(Bucket=res.bucket, Prefix="outputs/").get("KeyCount", 0)
        completed = sum(o.completed for o in report.outcomes.values())
        # Pause chaos: a failed job may have left audio behind (a paused attempt's upload), or none.
        least = completed if failures_allowed else jobs
        if not least <= listed <= jobs:
            report.duplicated.append(f"{listed} audio objects for {jobs} jobs ({completed} completed)")
        report.receives = read_receive_log(workdir)
    finally:
        if fleet is not None:
            fleet.abort()
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
    parser.add_argument(
        "--pause-chaos",
        action="store_true",
        help="jobs may end FAILED (retries exhausted) if recorded and published; "
        "presets --max-receive-count 6 --pause-s 5 9 --spread-jobs",
    )
    parser.add_argument("--spread-jobs", action="store_true", help="send the jobs over the run, not all at first")
    parser.add_argument("--visibility-s", type=int, default=4)
    parser.add_argument("--pause-s", type=float, nargs=2, metavar=("LO", "HI"), help="SIGSTOP length (default 5 8)")
    parser.add_argument("--max-receive-count", type=int, help="the queue's redrive policy (default 25)")
    parser.add_argument("--jobs-table", action="store_true", help="job records in a DynamoDB table, not S3")
    parser.add_argument("--stream", action="store_true", help="streamed jobs, each followed by a reader")
    args = parser.parse_args()
    report = run_chaos(
        args.workers,
        args.jobs,
        args.kills,
        args.seed,
        args.work_s,
        pauses=args.pauses,
        visibility_s=args.visibility_s,
        pause_s=tuple(args.pause_s or ((5.0, 9.0) if args.pause_chaos else (5.0, 8.0))),
        max_receive_count=args.max_receive_count or (6 if args.pause_chaos else 25),
        failures_allowed=args.pause_chaos,
        spread_jobs=args.spread_jobs or args.pause_chaos,
        jobs_table=args.jobs_table,
        stream=args.stream,
    )
    print(report.summary())
    for line in report.histories():
        print(f"  {line}")
    print(f"logs: {report.workdir}")
    failed = report.problems()
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
