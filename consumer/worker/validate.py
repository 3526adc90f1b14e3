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


def job_id_hint(body: str, message_id: str) -> str:
    """The job id for events about this message, even when the body is invalid."""
    try:
        candidate = json.loads(body).get("job_id")
    except (ValueError, AttributeError):
        candidate = None
    if isinstance(candidate, str) and re.match(JOB_ID_PATTERN, candidate):
        return candidate
    return f"message-{message_id}"


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
