"""The text a job speaks: the request's `text`, or the UTF-8 object its `text_uri` names (long texts, up to
`contracts.limits.MAX_TEXT_URI_CHARS` characters), read from the worker's bucket or an allowed reference bucket."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_forbidden, is_missing, storage_errors
from consumer.core.errors import ForbiddenLocation, InvalidRequest
from consumer.worker.voices import split_s3_uri
from contracts.limits import MAX_TEXT_URI_BYTES, MAX_TEXT_URI_CHARS
from contracts.requests import SynthesisRequest


class TextResolver:
    def __init__(self, s3: Any, bucket: str, allowed_buckets: tuple[str, ...] = ()) -> None:
        self._s3 = s3
        self._allowed = {bucket, *allowed_buckets}

    def resolve(self, request: SynthesisRequest) -> str:
        """Raises `InvalidRequest` (missing, too long, not UTF-8, empty), `ForbiddenLocation`, `StorageError`."""
        if request.text is not None:
            return request.text
        assert request.text_uri is not None  # the contract requires one of them
        bucket, key = split_s3_uri(request.text_uri)
        if bucket not in self._allowed:
            raise ForbiddenLocation(f"reading text from bucket {bucket!r} is not allowed for this worker")
        with storage_errors(f"reading {request.text_uri}"):
            try:
                head = self._s3.head_object(Bucket=bucket, Key=key)
                if int(head["ContentLength"]) > MAX_TEXT_URI_BYTES:
                    raise InvalidRequest(
                        f"text_uri {request.text_uri} is {head['ContentLength']:,} bytes; at most "
                        f"{MAX_TEXT_URI_BYTES:,} ({MAX_TEXT_URI_CHARS:,} characters)"
                    )
                body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if is_missing(exc) or is_forbidden(exc):
                    raise InvalidRequest(f"text_uri {request.text_uri} does not exist or is not readable") from exc
                raise
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"text_uri {request.text_uri} is not UTF-8 text (byte {exc.start})") from exc
        if len(text) > MAX_TEXT_URI_CHARS:
            raise InvalidRequest(
                f"text_uri {request.text_uri} has {len(text):,} characters; at most {MAX_TEXT_URI_CHARS:,}"
            )
        if not text.strip():
            raise InvalidRequest(f"text_uri {request.text_uri} is empty")
        return text
