"""What the HTTP routes do, without HTTP: submit jobs on behalf of a key, read them back, cancel them.

Job ids are namespaced by key: a client's id `X` is the job `{key}.{X}`, so a key sees its own jobs only (another
key gets 404) and no two keys collide. Each job the API submits also gets a marker, `{api_jobs_prefix}/{job_id}
.json` (written If-None-Match: key, body hash, time): it tells "queued" from "unknown" before a worker has a
record, and makes `Idempotency-Key` exact (the same key with the same body returns the same job; with another
body, 409)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.clients import AwsClients
from consumer.aws.failures import is_conflict, is_missing
from consumer.core.errors import JobConflict, UnknownJob
from consumer.core.settings import Settings
from consumer.producer.client import Client
from consumer.storage.job_record import Completed, InProgress, JobRecord, Released
from consumer.storage.jobs import CancelResult
from consumer.storage.record_backends import records_for
from contracts.events import SynthesisCompleted
from contracts.limits import JOB_ID_PATTERN
from contracts.requests import SynthesisRequest

MAX_CLIENT_ID = 96


@dataclass(frozen=True)
class Submitted:
    job_id: str  # the full id (`{key}.{client id}`)
    client_id: str
    created: bool  # False: an idempotent retry of an earlier submission


class Gateway:
    def __init__(self, settings: Settings, clients: AwsClients) -> None:
        self.settings = settings
        self.clients = clients
        self.client = Client(
            clients,
            settings.queue_url,
            settings.bucket,
            jobs_prefix=settings.jobs_prefix,
            jobs_index_prefix=settings.jobs_index_prefix,
            records=records_for(clients, settings),
        )
        self._prefix = settings.api_jobs_prefix.strip("/")

    # --- submit -----------------------------------------------------------------------------------------------
    def submit(self, key: str, body: dict[str, Any], idempotency_key: str | None = None) -> Submitted:
        """Validate (raises pydantic's ValidationError), mark and enqueue a job for `key`."""
        body = dict(body)
        if idempotency_key:
            client_id = "idem-" + hashlib.sha256(f"{key}\0{idempotency_key}".encode()).hexdigest()[:40]
        else:
            client_id = str(body.get("job_id") or f"job-{uuid.uuid4().hex}")
        if len(client_id) > MAX_CLIENT_ID:
            raise ValueError(f"job_id: at most {MAX_CLIENT_ID} characters through the API")
        body["job_id"] = f"{key}.{client_id}"
        request = SynthesisRequest.model_validate(body)
        digest = hashlib.sha256(request.model_dump_json(exclude={"job_id"}).encode()).hexdigest()
        if not self._mark(request.job_id, key, digest):
            marker = self.marker(request.job_id)
            if marker is not None and marker.get("body_sha256") != digest:
                raise JobConflict(f"job {client_id!r} exists with another request body")
            return Submitted(request.job_id, client_id, created=False)
        self.client.submit(request)
        return Submitted(request.job_id, client_id, created=True)

    @staticmethod
    def marker_key(prefix: str, job_id: str) -> str:
        return f"{prefix.strip('/')}/{job_id}.json"

    def _mark(self, job_id: str, key: str, digest: str) -> bool:
        body = {"job_id": job_id, "key": key, "body_sha256": digest, "created_at": datetime.now(UTC).isoformat()}
        try:
            self.clients.s3.put_object(
                Bucket=self.settings.bucket,
                Key=self.marker_key(self._prefix, job_id),
                Body=json.dumps(body).encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if is_conflict(exc):
                return False
            raise
        return True

    def marker(self, job_id: str) -> dict[str, Any] | None:
        try:
            response = self.clients.s3.get_object(
                Bucket=self.settings.bucket, Key=self.marker_key(self._prefix, job_id)
            )
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return json.loads(response["Body"].read())

    # --- read -------------------------------------------------------------------------------------------------
    def describe(self, key: str, client_id: str) -> dict[str, Any]:
        """A job as the API shows it. Raises `UnknownJob`."""
        job_id = f"{key}.{client_id}"
        if not _valid(job_id):
            raise UnknownJob(client_id)
        record = self.client.record(job_id)
        if record is None:
            if self.marker(job_id) is None:
                raise UnknownJob(client_id)
            return {"id": client_id, "object": "job", "status": "queued"}
        return self.view(client_id, record)

    def view(self, client_id: str, record: JobRecord) -> dict[str, Any]:
        out: dict[str, Any] = {"id": client_id, "object": "job", "generation": record.generation}
        if isinstance(record, InProgress):
            progress = record.progress.model_dump(mode="json") if record.progress else None
            out |= {"status": "in_progress", "started_at": record.started_at, "progress": progress}
        elif isinstance(record, Released):
            out |= {"status": "queued", "retrying": record.released.error_code if record.released else None}
        elif isinstance(record, Completed):
            out |= {
                "status": "completed",
                "audio_url": self.client.presigned_url(record.event, expires_s=3600),
                "output": record.event.output.model_dump(mode="json"),
                "finished_at": record.finished_at,
            }
        else:
            out |= {
                "status": "cancelled" if record.cancelled else "failed",
                "error": {"code": record.failure.error_code, "message": record.failure.error_message},
                "finished_at": record.finished_at,
            }
        if record.cancel is not None and not record.terminal:
            out["cancel_requested"] = True
        return out

    def recent(self, key: str, status: str | None, limit: int) -> list[dict[str, Any]]:
        """This key's jobs of the last day, newest first (its prefix is matched on the index listing)."""
        since = datetime.now(UTC) - timedelta(days=1)
        rows = []
        for entry in self.client.recent(since, status=status, limit=limit, job_prefix=f"{key}."):
            at = entry.at.isoformat()
            client_id = entry.job_id[len(key) + 1 :]
            rows.append({"id": client_id, "status": entry.status.lower(), "at": at, "error_code": entry.error_code})
        return rows

    def cancel(self, key: str, client_id: str) -> CancelResult:
        job_id = f"{key}.{client_id}"
        if not _valid(job_id) or (self.client.record(job_id) is None and self.marker(job_id) is None):
            raise UnknownJob(client_id)
        return self.client.cancel(job_id, by=f"api:{key}")

    def audio(self, event: SynthesisCompleted) -> bytes:
        response = self.clients.s3.get_object(Bucket=event.output.bucket, Key=event.output.key)
        return bytes(response["Body"].read())


def _valid(job_id: str) -> bool:
    return bool(re.match(JOB_ID_PATTERN, job_id)) and ".." not in job_id
