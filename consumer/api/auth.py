"""API keys and per-key rate limits.

A key is `f5w_` + 32 random bytes (url-safe base64), shown once by `f5-worker api keys create NAME`; settings
hold only `name:sha256(key)`. A presented key is hashed and compared with every configured hash in constant
time; the key itself is never stored or logged. Without configured keys the API is keyless, which it allows on
a loopback address only (the local demo)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from consumer.core.errors import KeyConfigError

KEY_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
KEYLESS = "local"  # the key id of keyless mode


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str) -> tuple[str, str]:
    """(the new key, the `name:hash` line for F5_WORKER_API_KEY_HASHES)."""
    if not KEY_NAME_PATTERN.match(name):
        raise KeyConfigError(f"key name {name!r}: lowercase letters, digits and '-', at most 32")
    key = "f5w_" + secrets.token_urlsafe(32)
    return key, f"{name}:{hash_key(key)}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ApiKeys:
    hashes: tuple[tuple[str, str], ...]  # (name, sha256 hex)

    @classmethod
    def parse(cls, entries: tuple[str, ...]) -> ApiKeys:
        parsed = []
        for entry in entries:
            name, _, digest = entry.partition(":")
            if not KEY_NAME_PATTERN.match(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise KeyConfigError(f"F5_WORKER_API_KEY_HASHES entry {name or entry[:8]!r}: expected name:sha256hex")
            parsed.append((name, digest))
        return cls(tuple(parsed))

    @property
    def keyless(self) -> bool:
        return not self.hashes

    def identify(self, authorization: str | None) -> str | None:
        """The key's name for an `Authorization: Bearer <key>` header, else None (constant time per hash)."""
        if self.keyless:
            return KEYLESS
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        presented = hash_key(authorization[7:].strip())
        found = None
        for name, digest in self.hashes:  # no early exit: the time does not tell which entry matched
            if hmac.compare_digest(presented, digest):
                found = name
        return found


class RateLimiter:
    """A token bucket per key: `per_minute` requests a minute on average, bursts up to a tenth of it (at least
    5). Per process: N replicas allow N times as much."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_minute / 60.0
        self._capacity = max(5.0, per_minute / 10.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait before the next request is."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) * self._rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self._rate
