"""One controller at a time: a lease in S3, taken and renewed with conditional writes like a job's claim.

The lease object holds the owner, when it expires (wall clock) and what the policy remembers (`PolicyState`
and the measured rate), so a controller that takes over continues the same cooldowns. A second `scale` finds
the lease held, waits, and takes it once it has expired (its holder stopped renewing: killed, paused, cut off).
A holder whose renewal fails (someone took the lease after it expired) stops acting at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_conflict, is_missing
from consumer.core.logs import get_logger

log = get_logger(__name__)


@dataclass
class LeaseBody:
    owner: str
    expires_at: float
    memory: dict[str, Any] = field(default_factory=dict)  # the policy state and the measured rate

    def dump(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": self.expires_at, "memory": self.memory}).encode()

    @classmethod
    def load(cls, raw: bytes) -> LeaseBody:
        data = json.loads(raw)
        return cls(str(data["owner"]), float(data["expires_at"]), dict(data.get("memory") or {}))


class ControllerLease:
    def __init__(
        self, s3: Any, bucket: str, key: str, owner: str, ttl_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._s3, self._bucket, self._key = s3, bucket, key
        self.owner = owner
        self.ttl_s = ttl_s
        self._clock = clock
        self._etag: str | None = None
        self.memory: dict[str, Any] = {}

    @property
    def held(self) -> bool:
        return self._etag is not None

    def read(self) -> tuple[LeaseBody | None, str | None]:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self._key)
        except ClientError as exc:
            if is_missing(exc):
                return None, None
            raise
        return LeaseBody.load(response["Body"].read()), str(response["ETag"])

    def try_acquire(self) -> bool:
        """Take the lease if it is free or expired (or already ours); False while another holds it."""
        current, etag = self.read()
        now = self._clock()
        if current is not None and current.owner != self.owner and current.expires_at > now:
            return False
        memory = current.memory if current is not None else {}
        body = LeaseBody(self.owner, now + self.ttl_s, memory)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        if not self._put(body, condition):
            return False
        self.memory = memory
        if current is not None and current.owner != self.owner:
            log.info("fleet_lease_taken_over", previous=current.owner, expired_s=round(now - current.expires_at, 1))
        return True

    def renew(self, memory: dict[str, Any]) -> bool:
        """Extend the lease and store what the policy remembers; False (and no longer held) if it was lost."""
        if self._etag is None:
            return False
        body = LeaseBody(self.owner, self._clock() + self.ttl_s, memory)
        if self._put(body, {"IfMatch": self._etag}):
            self.memory = memory
            return True
        log.warning("fleet_lease_lost", owner=self.owner, consequence="this controller stops acting")
        self._etag = None
        return False

    def release(self) -> None:
        """Hand the lease back at once (expired now), so a successor need not wait out the TTL."""
        if self._etag is not None:
            self._put(LeaseBody(self.owner, 0.0, self.memory), {"IfMatch": self._etag})
            self._etag = None

    def _put(self, body: LeaseBody, condition: dict[str, str]) -> bool:
        try:
            response = self._s3.put_object(
                Bucket=self._bucket, Key=self._key, Body=body.dump(), ContentType="application/json", **condition
            )
        except ClientError as exc:
            if is_conflict(exc) or ("IfMatch" in condition and is_missing(exc)):
                self._etag = None
                return False
            raise
        self._etag = str(response["ETag"])
        return True
