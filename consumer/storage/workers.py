"""Which workers are alive: one small record per worker, `{prefix}/{worker_id}.json`, rewritten at most once
a minute while it polls and once more when it stops. `f5-worker status` lists the recent ones; a lifecycle
rule expires what dead workers left behind."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.core.logs import get_logger

log = get_logger(__name__)
WRITE_EVERY_S = 60.0


class WorkerRegistry:
    def __init__(self, s3: Any, bucket: str, prefix: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.prefix = prefix.strip("/")
        self._clock = clock
        self._last_write: float | None = None
        self._lock = threading.Lock()

    def key(self, worker_id: str) -> str:
        return f"{self.prefix}/{worker_id.replace('/', '_')}.json"

    def seen(self, worker_id: str, info: dict[str, Any], *, state: str = "polling", force: bool = False) -> bool:
        """Write this worker's record if a minute passed since the last write (or `force`). Best effort."""
        with self._lock:
            now = self._clock()
            if not force and self._last_write is not None and now - self._last_write < WRITE_EVERY_S:
                return False
            self._last_write = now
        body = {"worker_id": worker_id, "state": state, "seen_at": datetime.now(UTC).isoformat(), **info}
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self.key(worker_id),
                Body=json.dumps(body).encode(),
                ContentType="application/json",
            )
        except (ClientError, BotoCoreError) as exc:
            log.debug("worker_record_not_written", error=str(exc))
            return False
        return True

    def recent(self, within_s: float = 300.0) -> list[dict[str, Any]]:
        """Records of workers seen in the last `within_s` seconds, newest first."""
        cutoff = datetime.now(UTC) - timedelta(seconds=within_s)
        out = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{self.prefix}/"):
            for item in page.get("Contents", []):
                if item["LastModified"] < cutoff:
                    continue
                try:
                    out.append(json.loads(self._s3.get_object(Bucket=self._bucket, Key=item["Key"])["Body"].read()))
                except (ClientError, ValueError):
                    continue
        return sorted(out, key=lambda r: r.get("seen_at", ""), reverse=True)
