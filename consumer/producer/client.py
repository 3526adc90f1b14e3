"""A light producer client (boto3 and contracts only; never torch): submit requests, wait for their
outcome, fetch the audio."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from cachetools import LRUCache

from consumer.aws.clients import AwsClients
from consumer.aws.failures import error_code
from consumer.core.errors import JobTimeoutError, WebhookFailed
from consumer.core.targets import resolve_target
from consumer.storage.job_index import IndexEntry, JobIndex
from consumer.storage.job_record import Completed, Failed, JobRecord
from consumer.storage.jobs import CancelResult, JobStore
from consumer.storage.record_backends import RecordBackend
from consumer.storage.stream_blocks import sequence_prefix
from consumer.storage.stream_reader import StreamReader
from contracts.events import Event, SynthesisCompleted, parse_event
from contracts.requests import SynthesisRequest
from contracts.tasks import DELIVER_KIND, KIND_ATTRIBUTE, DeliveryTask


@dataclass
class BatchResult:
    sent: list[str] = field(default_factory=list)  # job ids
    failed: dict[str, str] = field(default_factory=dict)  # job id → reason


class Client:
    def __init__(
        self,
        clients: AwsClients,
        queue_url: str,
        bucket: str,
        *,
        jobs_prefix: str = "jobs",
        events_queue_url: str | None = None,
        jobs_index_prefix: str = "jobs-index",
        records: RecordBackend | None = None,
    ) -> None:
        self._aws = clients
        self.queue_url = queue_url
        self.bucket = bucket
        self.events_queue_url = events_queue_url
        self.index = JobIndex(clients.s3, bucket, jobs_index_prefix)
        self._jobs = JobStore(clients.s3, bucket, jobs_prefix, index=self.index, records=records)
        self.streams = StreamReader(clients.s3, self._jobs, bucket)
        self._sent: LRUCache[str, str] = LRUCache(maxsize=10_000)  # job id → MessageId, for `stream`
        self._fifo = queue_url.endswith(".fifo")
        self._seen: dict[str, tuple[Event, str]] = {}

    def _message(self, request: SynthesisRequest) -> dict[str, Any]:
        entry: dict[str, Any] = {"MessageBody": request.model_dump_json()}
        if self._fifo:
            # Order per voice; dedup on the job id (not on content: identical texts are distinct jobs).
            entry["MessageGroupId"] = request.voice.voice_id or "reference"
            entry["MessageDeduplicationId"] = request.job_id
        return entry

    def redeliver(self, job_id: str, *, allow_private: bool = False) -> Event:
        """Send a finished job's recorded event again, by hand: a worker publishes it to SNS and POSTs it to the
        job's webhook (same `event_id`, so subscribers deduplicate). Raises LookupError if the job has no outcome,
        `WebhookRefused` (nothing queued) if its webhook is an address workers refuse (`allow_private`: theirs)."""
        done = self._jobs.terminal(job_id)
        if done is None:
            raise LookupError(f"job {job_id} has no recorded outcome (not finished, or unknown)")
        if done.webhook_url:
            with contextlib.suppress(WebhookFailed):  # unresolvable from here: the worker's POST tells
                resolve_target(done.webhook_url, allow_private)
        now = datetime.now(UTC)
        task = DeliveryTask(job_id=job_id, first_at=now, not_before=now, manual=True)
        entry: dict[str, Any] = {
            "MessageBody": task.model_dump_json(),
            "MessageAttributes": {KIND_ATTRIBUTE: {"DataType": "String", "StringValue": DELIVER_KIND}},
        }
        if self._fifo:
            entry["MessageGroupId"] = f"deliver-{job_id}"
            entry["MessageDeduplicationId"] = f"{job_id}-manual-{now.timestamp():.0f}"
        self._aws.sqs.send_message(QueueUrl=self.queue_url, **entry)
        return done.event

    def submit(self, request: SynthesisRequest) -> str:
        sent = self._aws.sqs.send_message(QueueUrl=self.queue_url, **self._message(request))
        self._sent[request.job_id] = sent.get("MessageId", "")
        return request.job_id

    def submit_batch(self, requests: list[SynthesisRequest]) -> BatchResult:
        """SendMessageBatch, 10 per call; per-entry failures are reported, not raised."""
        result = BatchResult()
        for start in range(0, len(requests), 10):
            chunk = requests[start : start + 10]
            entries = [{"Id": str(i), **self._message(r)} for i, r in enumerate(chunk)]
            response = self._aws.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            result.sent += [chunk[int(ok["Id"])].job_id for ok in response.get("Successful", [])]
            for bad in response.get("Failed", []):
                result.failed[chunk[int(bad["Id"])].job_id] = f"{bad.get('Code')}: {bad.get('Message', '')}"
        return result

    def result(self, job_id: str) -> Event | None:
        """The recorded outcome of a finished job (completed or failed), or None."""
        return self._jobs.result(job_id)

    @property
    def jobs(self) -> JobStore:
        return self._jobs

    @property
    def aws(self) -> AwsClients:
        """The boto3 clients it sends with (the CLI's voice check reuses them)."""
        return self._aws

    def record(self, job_id: str) -> JobRecord | None:
        """The job's record as it is now (see docs/architecture.md), or None if no worker has seen the job."""
        record, _ = self._jobs.read(job_id)
        return record

    def cancel(self, job_id: str, by: str, reason: str = "") -> CancelResult:
        """Ask for a job to be cancelled: a queued one fails with `cancelled` when a worker receives it, a
        running one at its next sampling step once its worker sees the request (within `progress_interval_s`)."""
        return self._jobs.request_cancel(job_id, by, reason)

    def recent(
        self, since: datetime, *, status: str | None = None, limit: int | None = None, job_prefix: str = ""
    ) -> list[IndexEntry]:
        """Jobs claimed or finished since `since`, newest first, from the hourly index."""
        return self.index.entries(since, status=status, limit=limit, job_prefix=job_prefix)

    def stream(
        self, job_id: str, timeout_s: float = 300.0, stop: Callable[[], bool] = lambda: False
    ) -> Iterator[bytes]:
        """The job's audio bytes while it is made (a request with `output.stream`; any other job gives its whole
        object once done): concatenated, the final object's bytes (a WAV's header sizes aside). Raises
        `StreamFailed` when the job fails, `JobTimeoutError` after `timeout_s` (`consumer.storage.stream_reader`).
        A job this client sent is looked for where its first attempt writes (its MessageId names the sequence)
        before its record says where."""
        message_id = self._sent.get(job_id)
        expected = sequence_prefix(job_id, 1, 1, message_id) if message_id else None
        return self.streams.blocks(job_id, timeout_s, stop, expected=expected)

    def wait(
        self,
        job_id: str,
        timeout_s: float = 300.0,
        poll_s: float = 1.0,
        on_record: Callable[[JobRecord | None], None] | None = None,
    ) -> Event:
        """Wait for the job's outcome: from its record in S3 (completed, failed or cancelled: no events queue
        needed), or from the events queue when configured. `on_record` sees each poll's record (None while no
        worker has taken the job), to show progress."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if job_id in self._seen:
                event, receipt = self._seen.pop(job_id)
                self._aws.sqs.delete_message(QueueUrl=self.events_queue_url, ReceiptHandle=receipt)
                return event
            record, _ = self._jobs.read(job_id)
            if isinstance(record, Completed | Failed):
                return record.event
            if on_record is not None:
                on_record(record)
            if self.events_queue_url:
                self._drain_events(wait_s=int(min(poll_s, max(0.0, deadline - time.monotonic()))))
            else:
                time.sleep(poll_s)
        raise JobTimeoutError(f"job {job_id} did not finish within {timeout_s:.0f}s")

    def _drain_events(self, wait_s: int) -> None:
        response = self._aws.sqs.receive_message(
            QueueUrl=self.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
        )
        for message in response.get("Messages", []):
            try:
                event = parse_event(message["Body"])
            except ValueError:
                continue
            self._seen[event.job_id] = (event, message["ReceiptHandle"])  # others' events stay queued

    def presigned_url(self, event: SynthesisCompleted, expires_s: int = 3600) -> str:
        return self._aws.s3.generate_presigned_url(
            "get_object", Params={"Bucket": event.output.bucket, "Key": event.output.key}, ExpiresIn=expires_s
        )

    def download(self, event: SynthesisCompleted, path: Path) -> Path:
        try:
            self._aws.s3.download_file(event.output.bucket, event.output.key, str(path))
        except ClientError as exc:
            raise FileNotFoundError(f"{event.output.uri}: {error_code(exc)}") from exc
        return path
