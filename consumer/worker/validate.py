"""Step 1: parse a message body into a `SynthesisRequest`. Anything invalid is a permanent poison pill."""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from consumer.core.errors import InvalidRequest
from contracts.events import ErrorCode
from contracts.limits import JOB_ID_PATTERN
from contracts.requests import SynthesisRequest, describe_validation_error, parse_request

MAX_BODY_BYTES = 256 * 1024


def _field(body: str, *path: str) -> object:
    try:
        value: object = json.loads(body)
    except ValueError:
        return None
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def usable_job_id(body: str) -> str | None:
    """The body's job id when it can name a job record (even if the rest of the body is invalid), else None."""
    candidate = _field(body, "job_id")
    if isinstance(candidate, str) and re.match(JOB_ID_PATTERN, candidate) and ".." not in candidate:
        return candidate
    return None


def job_id_hint(body: str, message_id: str) -> str:
    """The job id for events about this message: its own, or `message-<MessageId>` when it has no usable one."""
    return usable_job_id(body) or f"message-{message_id}"


def webhook_hint(body: str) -> str | None:
    """The body's `notify.webhook_url` when it is an http(s) URL, even if the rest of the body is invalid: an
    invalid request still reaches its webhook (the address rules apply when it is delivered)."""
    url = _field(body, "notify", "webhook_url")
    if isinstance(url, str) and len(url) <= 2048 and url.startswith(("http://", "https://")):
        return url
    return None


def validate(body: str) -> SynthesisRequest:
    if len(body.encode()) > MAX_BODY_BYTES:
        raise InvalidRequest(f"message body is larger than {MAX_BODY_BYTES} bytes")
    try:
        json.loads(body)
    except ValueError as exc:
        raise InvalidRequest(f"message body is not JSON: {exc}", code=ErrorCode.INVALID_JSON) from exc
    try:
        return parse_request(body)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid request: {describe_validation_error(exc)}") from exc
