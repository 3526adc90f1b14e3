"""Which workers are alive and what they did this hour, in a few shared objects, so that `f5-worker status` costs
the same few requests whatever the fleet's size or the hour's volume.

Each worker keeps one entry (its state, in flight, and its counts of jobs claimed, completed and failed by error
code in that hour) in one of `SHARDS` objects per hour:

    {prefix}/{yyyy-mm-dd}/{hh}/{shard}.json     {"workers": {worker_id: entry, ...}}

and rewrites it at most once a minute (and when it stops) by read, merge, conditional put (`If-Match`, or
`If-None-Match` for the hour's first): writers of one shard never lose each other's entries, and a retried write
replaces the worker's own entry instead of adding twice. Reading the current and the previous hour is
2 x SHARDS GETs. Counts are those the worker had at its last write: a worker killed mid-minute leaves up to a
minute of them out (the jobs themselves are unaffected). A lifecycle rule expires old hours.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.aws.failures import is_conflict, is_missing
from consumer.aws.retry import OPTIMISTIC_WRITE_TRIES
from consumer.core.logs import get_logger

log = get_logger(__name__)
WRITE_EVERY_S = 60.0
SHARDS = 2  # writers per object at 1,000 workers: about 8 a second, each a GET and a conditional PUT


def _hour(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d/%H}"


class HourlyTally:
    """A worker's counts of jobs claimed, completed and failed (by error code), per hour they happened in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hours: dict[str, Counter[str]] = {}

    def note(self, job_id: str, status: str, at: datetime, error_code: str | None = None) -> None:
        key = {"INPROGRESS": "claimed", "COMPLETED": "completed", "FAILED": "failed"}.get(status)
        if key is None:
            return
        with self._lock:
            counts = self._hours.setdefault(_hour(at), Counter())
            counts[key] += 1
            if key == "failed" and error_code:
                counts[f"error:{error_code}"] += 1

    def hours(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {hour: dict(counts) for hour, counts in self._hours.items()}

    def forget_before(self, hour: str) -> None:
        with self._lock:
            for old in [h for h in self._hours if h < hour]:
                del self._hours[old]


class WorkerRegistry:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str,
        clock: Callable[[], float] = time.monotonic,
        tally: HourlyTally | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.prefix = prefix.strip("/")
        self._clock = clock
        self._now = now
        self.tally = tally or HourlyTally()
        self._last_write: float | None = None
        self._lock = threading.Lock()

    def shard_key(self, hour: str, shard: int) -> str:
        return f"{self.prefix}/{hour}/{shard}.json"

    def shard_of(self, worker_id: str) -> int:
        return zlib.crc32(worker_id.encode()) % SHARDS

    # --- the worker's side ---------------------------------------------------------------------------------
    def seen(self, worker_id: str, info: dict[str, Any], *, state: str = "polling", force: bool = False) -> bool:
        """Write this worker's entry if a minute passed since the last write (or `force`). Best effort. The
        previous hour's entry is written once more after the hour turns, with its final counts."""
        with self._lock:
            now = self._clock()
            if not force and self._last_write is not None and now - self._last_write < WRITE_EVERY_S:
                return False
            self._last_write = now
        at = self._now()
        current = _hour(at)
        counts = self.tally.hours()
        entry = {"worker_id": worker_id, "state": state, "seen_at": at.isoformat(), **info}
        ok = True
        for hour in sorted(set(counts) | {current}):
            body = dict(entry, counts=counts.get(hour, {}))
            if hour != current:
                body["state"] = "moved_on"  # its counts for that hour are final; it is alive in the current one
            ok = self._merge(hour, worker_id, body) and ok
        self.tally.forget_before(current)
        return ok

    def _merge(self, hour: str, worker_id: str, entry: dict[str, Any]) -> bool:
        key = self.shard_key(hour, self.shard_of(worker_id))
        for _ in range(OPTIMISTIC_WRITE_TRIES):
            try:
                shard, etag = self._read(key)
                shard.setdefault("workers", {})[worker_id] = entry
                condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
                self._s3.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=json.dumps(shard).encode(),
                    ContentType="application/json",
                    **condition,
                )
                return True
            except ClientError as exc:
                if is_conflict(exc) or is_missing(exc):
                    continue  # another worker wrote the shard meanwhile: read it again
                log.debug("worker_record_not_written", error=str(exc))
                return False
            except BotoCoreError as exc:
                log.debug("worker_record_not_written", error=str(exc))
                return False
        log.debug("worker_record_not_written", error="shard kept changing", key=key)
        return False

    def _read(self, key: str) -> tuple[dict[str, Any], str]:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if is_missing(exc):
                return {}, ""
            raise
        return json.loads(response["Body"].read()), str(response["ETag"])

    # --- readers -------------------------------------------------------------------------------------------
    def entries(self, hours: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Every worker's entry in each of `hours`: SHARDS GETs per hour."""
        out: dict[str, list[dict[str, Any]]] = {}
        for hour in hours:
            out[hour] = []
            for shard in range(SHARDS):
                try:
                    data, _ = self._read(self.shard_key(hour, shard))
                except (ClientError, BotoCoreError, ValueError):
                    continue
                out[hour].extend(data.get("workers", {}).values())
        return out

    def summary(self, within_s: float = 300.0) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """(workers seen in the last `within_s` seconds, newest first; the counts of the current and the previous
        hour summed over every worker): 2 x SHARDS GETs whatever the fleet's size or volume."""
        now = self._now()
        hours = [_hour(now - timedelta(hours=1)), _hour(now)]
        by_hour = self.entries(hours)
        cutoff = (now - timedelta(seconds=within_s)).isoformat()
        latest: dict[str, dict[str, Any]] = {}
        for entry in by_hour[hours[1]] + by_hour[hours[0]]:
            worker = entry.get("worker_id", "")
            if entry.get("state") != "moved_on" and entry.get("seen_at", "") >= cutoff and worker not in latest:
                latest[worker] = {k: v for k, v in entry.items() if k != "counts"}
        counts: Counter[str] = Counter()
        for entries in by_hour.values():
            for entry in entries:
                counts.update(entry.get("counts", {}))
        workers = sorted(latest.values(), key=lambda r: r.get("seen_at", ""), reverse=True)
        return workers, dict(counts)

    def recent(self, within_s: float = 300.0) -> list[dict[str, Any]]:
        """Entries of workers seen in the last `within_s` seconds, newest first."""
        return self.summary(within_s)[0]
