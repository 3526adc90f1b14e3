"""Faults injected inside botocore, where the clients' retry layer (`consumer.aws.retry.install`) sees them, as a
real network or service would produce them."""

from __future__ import annotations

from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError
from botocore.httpsession import URLLib3Session


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any):
        yield self._data


def throttled(url: str) -> AWSResponse:
    """S3's answer when it sheds load: 503 SlowDown."""
    body = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
    return AWSResponse(url, 503, {"Content-Type": "application/xml"}, _Body(body))


def internal_error(url: str) -> AWSResponse:
    """A service's 500 InternalError: a fault a second try may fix (AWS_CALL), not throttling."""
    body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
    return AWSResponse(url, 500, {"Content-Type": "application/xml"}, _Body(body))


def stored_then_dropped(request: Any) -> None:
    """Send the request for real (the service stores it), then lose the response as a closed connection does."""
    URLLib3Session().send(request)
    raise ConnectionClosedError(endpoint_url=request.url)


class PrefixRateLimit:
    """S3's request-rate limits per partitioned prefix (3,500 PUT/COPY/POST/DELETE and 5,500 GET/HEAD per second,
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html), scaled by `scale`: a request
    over its prefix's budget in the current second gets S3's 503 SlowDown. A prefix is the key up to its first `/`,
    or up to the hour for the hourly layouts (`jobs-index/2030-01-01/10/`, `workers/2030-01-01/10/`), as S3 would
    partition a busy bucket. Register `before_send` on a client's `before-send.s3` event."""

    PUT_PER_S, GET_PER_S = 3500, 5500

    def __init__(self, scale: float) -> None:
        import threading

        self._lock = threading.Lock()
        self._limits = {"write": self.PUT_PER_S * scale, "read": self.GET_PER_S * scale}
        self._window: dict[tuple[str, str, int], int] = {}
        self.throttled: dict[str, int] = {}
        self.allowed = 0

    @staticmethod
    def prefix_of(url: str) -> str:
        from urllib.parse import urlparse

        path = urlparse(url).path.lstrip("/").split("/", 1)  # path-style: bucket/key
        parts = (path[1] if len(path) > 1 else "").split("/")
        depth = 3 if parts[0] in ("jobs-index", "workers") else 1
        return "/".join(parts[:depth]) + "/"

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        import time

        if "?" in request.url and "list-type" in request.url:
            return None  # listings have their own budget; not modelled
        kind = "write" if request.method in ("PUT", "POST", "DELETE") else "read"
        prefix = self.prefix_of(request.url)
        with self._lock:
            slot = (prefix, kind, int(time.monotonic()))
            used = self._window.get(slot, 0)
            if used >= self._limits[kind]:
                self.throttled[prefix] = self.throttled.get(prefix, 0) + 1
                return throttled(request.url)
            self._window[slot] = used + 1
            self.allowed += 1
        return None
