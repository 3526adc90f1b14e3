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


def stored_then_dropped(request: Any) -> None:
    """Send the request for real (the service stores it), then lose the response as a closed connection does."""
    URLLib3Session().send(request)
    raise ConnectionClosedError(endpoint_url=request.url)
