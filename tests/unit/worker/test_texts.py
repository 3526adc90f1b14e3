"""TextResolver: inline text as is; a `text_uri` read from an allowed bucket within the limits, each way it can
be wrong named (missing, too long, not UTF-8, empty, forbidden bucket, storage down)."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config

from consumer.core.errors import ForbiddenLocation, InvalidRequest, StorageError
from consumer.worker.texts import TextResolver
from contracts.limits import MAX_TEXT_URI_BYTES, MAX_TEXT_URI_CHARS
from contracts.requests import SynthesisRequest

VOICE = {"voice_id": "basic-en"}


def _inline(text: str) -> SynthesisRequest:
    return SynthesisRequest.model_validate({"job_id": "j", "text": text, "voice": VOICE})


def _from_uri(uri: str) -> SynthesisRequest:
    return SynthesisRequest.model_validate({"job_id": "j", "text_uri": uri, "voice": VOICE})


def _put(stack, key: str, body: bytes, bucket: str | None = None) -> str:
    bucket = bucket or stack.resources.bucket
    stack.clients.s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _resolver(stack, *allowed: str) -> TextResolver:
    return TextResolver(stack.clients.s3, stack.resources.bucket, allowed)


def test_inline_text_is_returned_without_reading_storage():
    resolver = TextResolver(s3=None, bucket="unused")  # any storage call would fail
    assert resolver.resolve(_inline("Hello there.")) == "Hello there."


def test_a_text_uri_in_the_workers_bucket_is_read_as_utf8(stack):
    uri = _put(stack, "texts/chapter.txt", "Ça va? 你好。".encode())
    assert _resolver(stack).resolve(_from_uri(uri)) == "Ça va? 你好。"


def test_a_byte_order_mark_is_dropped(stack):
    uri = _put(stack, "texts/bom.txt", "\ufeffHello.".encode())
    assert _resolver(stack).resolve(_from_uri(uri)) == "Hello."


def test_a_text_at_the_character_limit_is_accepted(stack):
    uri = _put(stack, "texts/max.txt", b"a" * MAX_TEXT_URI_CHARS)
    assert len(_resolver(stack).resolve(_from_uri(uri))) == MAX_TEXT_URI_CHARS


def test_a_bucket_that_is_not_allowed_is_refused_before_any_read(stack):
    uri = "s3://someone-elses-bucket/texts/a.txt"
    with pytest.raises(ForbiddenLocation, match="someone-elses-bucket"):
        _resolver(stack).resolve(_from_uri(uri))


def test_an_allowed_reference_bucket_may_hold_the_text(stack):
    other = f"{stack.resources.bucket}-refs"
    stack.clients.s3.create_bucket(Bucket=other)
    uri = _put(stack, "a.txt", b"From the other bucket.", bucket=other)
    with pytest.raises(ForbiddenLocation):
        _resolver(stack).resolve(_from_uri(uri))
    assert _resolver(stack, other).resolve(_from_uri(uri)) == "From the other bucket."


def test_a_missing_object_is_an_invalid_request(stack):
    uri = f"s3://{stack.resources.bucket}/texts/nothing-here.txt"
    with pytest.raises(InvalidRequest, match="does not exist or is not readable"):
        _resolver(stack).resolve(_from_uri(uri))


def test_an_object_over_the_byte_limit_is_refused_from_its_size(stack):
    uri = _put(stack, "texts/huge.txt", b"a" * (MAX_TEXT_URI_BYTES + 1))
    with pytest.raises(InvalidRequest, match=f"{MAX_TEXT_URI_BYTES + 1:,} bytes"):
        _resolver(stack).resolve(_from_uri(uri))


def test_more_characters_than_the_limit_are_refused(stack):
    uri = _put(stack, "texts/long.txt", b"a" * (MAX_TEXT_URI_CHARS + 1))
    with pytest.raises(InvalidRequest, match=f"{MAX_TEXT_URI_CHARS + 1:,} characters"):
        _resolver(stack).resolve(_from_uri(uri))


def test_bytes_that_are_not_utf8_are_refused_naming_where(stack):
    uri = _put(stack, "texts/latin1.txt", "abc é".encode("latin-1"))
    with pytest.raises(InvalidRequest, match=r"not UTF-8 text \(byte 4\)"):
        _resolver(stack).resolve(_from_uri(uri))


@pytest.mark.parametrize("body", [b"", b"  \n\t "])
def test_an_empty_or_blank_text_is_refused(stack, body):
    uri = _put(stack, "texts/blank.txt", body)
    with pytest.raises(InvalidRequest, match="is empty"):
        _resolver(stack).resolve(_from_uri(uri))


def test_storage_that_does_not_answer_is_a_storage_error():
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # closed once the block ends: nothing listens there
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    with pytest.raises(StorageError, match=r"reading s3://bucket-a/t\.txt"):
        TextResolver(s3, "bucket-a").resolve(_from_uri("s3://bucket-a/t.txt"))
