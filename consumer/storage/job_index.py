"""A time-partitioned index of recent jobs, so a listing for a time window costs requests in proportion to the
jobs in it (records are keyed by producer-chosen ids, which have no order).

One tiny object per job and hour it was touched in: `{prefix}/{yyyy-mm-dd}/{hh}/{job_id}`, written when a
worker claims the job and again when it records the outcome (the hour of each). The body repeats the state at
that moment; the job record stays the truth. Index writes are best effort: a lost one hides a job from
listings, never from `jobs show`. A lifecycle rule expires the index with the job records.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.core.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class IndexEntry:
    job_id: str
    status: str
    at: datetime
    key: str
    error_code: str | None = None


def hour_prefixes(prefix: str, since: datetime, until: datetime) -> list[str]:
    """The hour partitions that cover [since, until], oldest first."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= until:
        out.append(f"{prefix}/{hour:%Y-%m-%d}/{hour:%H}/")
        hour += timedelta(hours=1)
    return out


class JobIndex:
    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, job_id: str, at: datetime) -> str:
        at = at.astimezone(UTC)
        return f"{self.prefix}/{at:%Y-%m-%d}/{at:%H}/{job_id}"

    def note(self, job_id: str, status: str, at: datetime, error_code: str | None = None) -> None:
        """Record that `job_id` reached `status` at `at` (best effort: failures are logged, not raised)."""
        body = {"job_id": job_id, "status": status, "at": at.isoformat(), "error_code": error_code}
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self.key(job_id, at),
                Body=json.dumps(body).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("job_index_not_written", job_id=job_id, error=str(exc), consequence="missing from listings")

    def keys(self, since: datetime, until: datetime) -> Iterator[tuple[str, datetime, str]]:
        """(key, last modified, ETag) of every index object in the hours covering [since, until]: one
        ListObjectsV2 page per 1,000 entries per hour, and nothing read outside the window."""
        paginator = self._s3.get_paginator("list_objects_v2")
        for hour in hour_prefixes(self.prefix, since, until):
            for page in paginator.paginate(Bucket=self._bucket, Prefix=hour):
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"], str(item.get("ETag", ""))

    def entries(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        job_prefix: str = "",
    ) -> list[IndexEntry]:
        """The newest index entry of each job touched in [since, until], newest first, optionally only those in
        `status` and whose id starts with `job_prefix`, at most `limit`: one GET per entry read, newest first,
        stopping at `limit` (the prefix is matched on the listing, before any GET)."""
        until = until or datetime.now(UTC)
        newest: dict[str, tuple[str, datetime]] = {}
        for key, modified, _ in self.keys(since, until):
            job_id = key.rsplit("/", 1)[-1]
            if not job_id.startswith(job_prefix):
                continue
            if job_id not in newest or modified >= newest[job_id][1]:
                newest[job_id] = (key, modified)
        out: list[IndexEntry] = []
        for job_id, (key, _) in sorted(newest.items(), key=lambda item: item[1][1], reverse=True):
            if limit is not None and len(out) >= limit:
                break
            try:
                body = json.loads(self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read())
            except ClientError:
                continue  # expired between the listing and the read
            at = datetime.fromisoformat(body["at"])
            if since <= at <= until and (status is None or body["status"] == status):
                out.append(IndexEntry(job_id, body["status"], at, key, body.get("error_code")))
        return sorted(out, key=lambda e: e.at, reverse=True)
