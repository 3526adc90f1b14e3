"""A time-partitioned index of recent jobs, written in batches, so that listings cost requests in proportion to
the batches in a window, not to the jobs (records are keyed by producer-chosen ids, which have no order).

A worker gathers what happened to its jobs (claimed, completed, failed, at what time) and writes it as one small
object, a segment, at most every `flush_s` seconds or every `max_entries` entries:

    {prefix}/{yyyy-mm-dd}/{hh}/{mmss}-{writer}-{seq}-{n}.json   [{"job_id", "status", "at", "error_code"}, ...]

At 1,000 jobs/s on 100 workers that is 20 segment writes per second instead of 2,000 entry writes, far under the
3,500 PUT/s S3 allows per prefix. Keys sort by time within the hour, and `n`, the number of jobs the segment
says finished (completed or failed), is in the key: the jobs finished in a window (the fleet controller's measured
rate) are counted from one listing, without reads.
Segments are best effort: a lost one (a write failing, a worker killed with entries not yet written) hides those
jobs from `jobs list`, never from `jobs show`; the job record stays the truth. A lifecycle rule expires them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from consumer.core.logs import get_logger

log = get_logger(__name__)
FINISHED = ("COMPLETED", "FAILED")
CLOCK_SKEW = timedelta(seconds=30)  # segments written by a clock this far behind still count in a window


class NoteSink(Protocol):
    def note(self, job_id: str, status: str, at: datetime, error_code: str | None = None) -> None: ...


class Notes:
    """One `note` to several sinks (the worker's index segments and its hourly tally)."""

    def __init__(self, *sinks: NoteSink) -> None:
        self.sinks = sinks

    def note(self, job_id: str, status: str, at: datetime, error_code: str | None = None) -> None:
        for sink in self.sinks:
            sink.note(job_id, status, at, error_code)


@dataclass(frozen=True)
class IndexEntry:
    job_id: str
    status: str
    at: datetime
    key: str
    error_code: str | None = None


@dataclass(frozen=True)
class Segment:
    key: str
    modified: datetime
    finished: int  # jobs completed or failed, as the key says


def hour_prefixes(prefix: str, since: datetime, until: datetime) -> list[str]:
    """The hour partitions that cover [since, until], oldest first."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour <= until:
        out.append(f"{prefix}/{hour:%Y-%m-%d}/{hour:%H}/")
        hour += timedelta(hours=1)
    return out


def _finished_in(key: str) -> int:
    try:
        return int(key.rsplit("-", 1)[-1].removesuffix(".json"))
    except ValueError:
        return 0


class JobIndex:
    """Reads segments, and writes one segment per `note` (producers' rare writes; workers batch: IndexWriter)."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.prefix = prefix.strip("/")

    def segment_key(self, at: datetime, writer: str, seq: int, finished: int) -> str:
        at = at.astimezone(UTC)
        return f"{self.prefix}/{at:%Y-%m-%d}/{at:%H}/{at:%M%S}-{writer}-{seq:06d}-{finished}.json"

    def write(self, entries: list[dict[str, Any]], at: datetime, writer: str, seq: int) -> bool:
        """Store `entries` as one segment at `at`'s hour. Best effort: a failure is logged and False."""
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self.segment_key(at, writer, seq, sum(e["status"] in FINISHED for e in entries)),
                Body=json.dumps(entries).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("job_index_not_written", jobs=len(entries), error=str(exc), consequence="missing from listings")
            return False
        return True

    def note(self, job_id: str, status: str, at: datetime, error_code: str | None = None) -> None:
        """Record that `job_id` reached `status` at `at`, in a segment of its own."""
        self.write([_entry(job_id, status, at, error_code)], at, uuid.uuid4().hex[:12], 0)

    def segments(self, since: datetime, until: datetime) -> Iterator[Segment]:
        """Segments written in the hours covering [since, until], oldest first: one ListObjectsV2 page per 1,000
        segments, starting at `since`'s minute (less the clock skew allowed) in its hour."""
        paginator = self._s3.get_paginator("list_objects_v2")
        start = (since - CLOCK_SKEW).astimezone(UTC)
        for hour in hour_prefixes(self.prefix, since, until):
            extra = (
                {"StartAfter": f"{hour}{start:%M%S}"} if hour == f"{self.prefix}/{start:%Y-%m-%d}/{start:%H}/" else {}
            )
            for page in paginator.paginate(Bucket=self._bucket, Prefix=hour, **extra):
                for item in page.get("Contents", []):
                    yield Segment(item["Key"], item["LastModified"], _finished_in(item["Key"]))

    def finished(self, since: datetime, until: datetime) -> int:
        """Jobs noted as completed or failed in segments stored in (since, until]: listings only, no reads."""
        return sum(s.finished for s in self.segments(since, until) if since < s.modified <= until)

    def entries(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        job_prefix: str = "",
    ) -> list[IndexEntry]:
        """The newest entry of each job touched in [since, until], newest first, optionally only those in `status`
        and whose id starts with `job_prefix`, at most `limit`: one GET per segment, newest segments first,
        stopping once `limit` jobs are found."""
        until = until or datetime.now(UTC)
        newest: dict[str, IndexEntry] = {}
        stop_before: datetime | None = None
        for segment in sorted(self.segments(since, until), key=lambda s: s.key, reverse=True):
            written = self._time_of(segment.key)
            if stop_before is not None and written is not None and written < stop_before:
                break  # `limit` jobs found, and every segment that could hold a newer entry of theirs was read
            try:
                items = json.loads(self._s3.get_object(Bucket=self._bucket, Key=segment.key)["Body"].read())
            except (ClientError, ValueError):
                continue  # expired between the listing and the read
            for item in items:
                job_id, at = item["job_id"], datetime.fromisoformat(item["at"])
                if not job_id.startswith(job_prefix) or not since <= at <= until:
                    continue
                if job_id not in newest or at > newest[job_id].at:
                    newest[job_id] = IndexEntry(job_id, item["status"], at, segment.key, item.get("error_code"))
            matching = sum(1 for e in newest.values() if status is None or e.status == status)
            if limit is not None and stop_before is None and matching >= limit and written is not None:
                stop_before = written - CLOCK_SKEW  # keys order segments to the second, by their writers' clocks
        ordered = sorted(
            (e for e in newest.values() if status is None or e.status == status), key=lambda e: e.at, reverse=True
        )
        return ordered[:limit] if limit is not None else ordered

    def _time_of(self, key: str) -> datetime | None:
        """The time a segment's key names (its newest entry's, to the second)."""
        try:
            date, hour, rest = key.removeprefix(f"{self.prefix}/").split("/", 2)
            return datetime.strptime(f"{date} {hour}{rest[:4]}", "%Y-%m-%d %H%M%S").replace(tzinfo=UTC)
        except ValueError:
            return None


def _entry(job_id: str, status: str, at: datetime, error_code: str | None) -> dict[str, Any]:
    return {"job_id": job_id, "status": status, "at": at.isoformat(), "error_code": error_code}


class IndexWriter:
    """A worker's batched index writes: `note` gathers entries; a segment is written when `max_entries` are
    waiting, by a background flush every `flush_s` or as soon as the worker is idle (`flush_soon`), and at
    `close`. Entries are written under the hour they
    happened in (a batch that spans an hour boundary becomes two segments)."""

    def __init__(
        self,
        index: JobIndex,
        writer: str,
        *,
        flush_s: float = 5.0,
        max_entries: int = 100,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.index = index
        self.prefix = index.prefix
        self._writer = writer.replace("/", "_").replace("-", "_")  # `-` separates the key's fields
        self._flush_s = flush_s
        self._max = max_entries
        self._clock = clock
        self._pending: list[tuple[datetime, dict[str, Any]]] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.segments_written = 0

    def note(self, job_id: str, status: str, at: datetime, error_code: str | None = None) -> None:
        with self._lock:
            self._pending.append((at, _entry(job_id, status, at, error_code)))
            full = len(self._pending) >= self._max
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._run, name="index-flush", daemon=True)
                self._thread.start()
        if full:
            self.flush()

    def flush(self) -> None:
        """Write what is waiting, one segment per hour it spans."""
        with self._lock:
            pending, self._pending = self._pending, []
        by_hour: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
        for at, entry in pending:
            by_hour.setdefault(f"{at.astimezone(UTC):%Y%m%d%H}", []).append((at, entry))
        for batch in by_hour.values():
            with self._lock:
                self._seq += 1
                seq = self._seq
            at = max(a for a, _ in batch)
            if self.index.write([e for _, e in batch], at, self._writer, seq):
                self.segments_written += 1

    def flush_soon(self) -> None:
        """Write what is waiting now, in the background (a worker that has nothing in flight says so: at low volume
        listings then lag by a request, not by `flush_s`)."""
        with self._lock:
            waiting = bool(self._pending)
        if waiting:
            self._wake.set()

    def close(self) -> None:
        """Stop the background flush and write what is left."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._flush_s + 5)
        self.flush()

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._flush_s)
            self._wake.clear()
            if not self._closed.is_set():
                self.flush()
