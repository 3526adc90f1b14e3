"""Step 1: parse a message body into a `SynthesisRequest`. Anything invalid is a permanent poison pill.

`RequestBody` reads a body once: its JSON, what it names even when the rest is invalid (job id, webhook), and
the validated request (or why it is not one), each computed on first use."""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from consumer.core.errors import InvalidRequest
from contracts.events import ErrorCode
from contracts.limits import JOB_ID_PATTERN
from contracts.requests import SynthesisRequest, describe_validation_error

MAX_BODY_BYTES = 256 * 1024


def _usable(candidate: object) -> str | None:
    if isinstance(candidate, str) and re.match(JOB_ID_PATTERN, candidate) and ".." not in candidate:
        return candidate
    return None


def _webhook(url: object) -> str | None:
    if isinstance(url, str) and len(url) <= 2048 and url.startswith(("http://", "https://")):
        return url
    return None


def validate(body: str) -> SynthesisRequest:
    """The request in `body`. Raises `InvalidRequest` naming what is wrong."""
    return RequestBody(body).request()


def _validate(body: str, parsed: object) -> SynthesisRequest:
    if len(body.encode()) > MAX_BODY_BYTES:
        raise InvalidRequest(f"message body is larger than {MAX_BODY_BYTES} bytes")
    if parsed is None:
        try:
            json.loads(body)  # None is the JSON `null`, or no JSON at all: say which
        except ValueError as exc:
            raise InvalidRequest(f"message body is not JSON: {exc}", code=ErrorCode.INVALID_JSON) from exc
    try:
        return SynthesisRequest.model_validate(parsed)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid request: {describe_validation_error(exc)}") from exc


class RequestBody:
    """One message body, parsed once (JSON) and validated once, whatever asks for what."""

    def __init__(self, body: str) -> None:
        self.text = body

    @cached_property
    def _json(self) -> object:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def _field(self, *path: str) -> object:
        value = self._json
        for name in path:
            if not isinstance(value, dict):
                return None
            value = value.get(name)
        return value

    @cached_property
    def job_id(self) -> str | None:
        """The body's job id when it can name a job record (even if the rest of the body is invalid)."""
        return _usable(self._field("job_id"))

    def job_id_or(self, message_id: str) -> str:
        """The job id for events about this message: its own, or `message-<MessageId>` when it has none."""
        return self.job_id or f"message-{message_id}"

    @cached_property
    def webhook_hint(self) -> str | None:
        """`notify.webhook_url` when it is an http(s) URL, even if the rest of the body is invalid."""
        return _webhook(self._field("notify", "webhook_url"))

    @property
    def wants_stream(self) -> bool:
        """The body asks for `output.stream` (it may have left blocks in S3), valid or not."""
        return self._field("output", "stream") is True and self.job_id is not None

    @cached_property
    def _validated(self) -> SynthesisRequest | InvalidRequest:
        try:
            return _validate(self.text, self._json)
        except InvalidRequest as exc:
            return exc

    def request(self) -> SynthesisRequest:
        """The validated request. Raises `InvalidRequest` naming what is wrong."""
        if isinstance(self._validated, InvalidRequest):
            raise self._validated
        return self._validated

    @property
    def metadata(self) -> dict[str, Any]:
        """The request's metadata, for events, when the body is a valid request; else {}."""
        return {} if isinstance(self._validated, InvalidRequest) else self._validated.metadata
