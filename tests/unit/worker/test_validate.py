"""Validation of message bodies: what an invalid body still names (job id, webhook), validation done once, the
metadata echoed only from a valid request, and the error each kind of bad body gets."""

from __future__ import annotations

import json

import pytest

from consumer.core.errors import InvalidRequest
from consumer.worker import validate as validate_module
from consumer.worker.validate import MAX_BODY_BYTES, RequestBody, validate
from contracts.codes import ErrorCode


def _body(**fields) -> str:
    return json.dumps({"job_id": "job-1", "text": "Hello.", "voice": {"voice_id": "basic-en"}} | fields)


def test_a_valid_body_is_a_request_with_its_metadata():
    body = RequestBody(_body(metadata={"order": 5}))
    request = body.request()
    assert (request.job_id, request.text, request.voice.voice_id) == ("job-1", "Hello.", "basic-en")
    assert body.metadata == {"order": 5}
    assert validate(_body()).job_id == "job-1"


def test_an_invalid_body_still_names_its_job_and_webhook():
    body = RequestBody(
        json.dumps({"job_id": "job-2", "voice": {"voice_id": "v"}, "notify": {"webhook_url": "https://h.example/x"}})
    )
    with pytest.raises(InvalidRequest, match="give exactly one of text or text_uri"):
        body.request()
    assert body.job_id == "job-2"
    assert body.webhook_hint == "https://h.example/x"
    assert body.metadata == {}  # only a valid request's metadata is echoed


@pytest.mark.parametrize(
    "job_id",
    [
        "../etc",  # a path segment
        "a..b",
        "-starts-with-dash",
        "x" * 129,  # too long
        42,  # not a string
        None,
    ],
)
def test_a_job_id_that_cannot_name_a_record_is_not_used(job_id):
    body = RequestBody(json.dumps({"job_id": job_id}))
    assert body.job_id is None
    assert body.job_id_or("mid-9") == "message-mid-9"


def test_job_id_or_prefers_the_bodys_own_id():
    assert RequestBody(json.dumps({"job_id": "mine"})).job_id_or("mid-9") == "mine"


@pytest.mark.parametrize(
    "notify",
    [
        {"webhook_url": "ftp://h.example/x"},
        {"webhook_url": "https://h.example/" + "a" * 2048},
        {"webhook_url": 7},
        "not an object",
    ],
)
def test_a_webhook_hint_is_only_an_http_url_of_bounded_length(notify):
    assert RequestBody(json.dumps({"job_id": "j", "notify": notify})).webhook_hint is None


def test_nothing_is_named_from_a_body_that_is_not_a_json_object():
    for text in ("not json", "[1, 2]", "null", '"job-1"'):
        body = RequestBody(text)
        assert (body.job_id, body.webhook_hint, body.metadata) == (None, None, {})


def test_a_body_that_is_not_json_is_invalid_json():
    with pytest.raises(InvalidRequest, match="not JSON") as raised:
        validate("{not json")
    assert raised.value.code == ErrorCode.INVALID_JSON


def test_json_null_is_an_invalid_request_not_invalid_json():
    with pytest.raises(InvalidRequest) as raised:
        validate("null")
    assert raised.value.code == ErrorCode.INVALID_REQUEST


def test_a_schema_error_names_the_field():
    with pytest.raises(InvalidRequest, match=r"invalid request: .*voice") as raised:
        validate(json.dumps({"job_id": "j", "text": "Hi."}))
    assert raised.value.code == ErrorCode.INVALID_REQUEST


def test_a_body_over_the_size_limit_is_refused_before_validation():
    big = _body(text="a" * 10, metadata={"pad": "p" * MAX_BODY_BYTES})
    body = RequestBody(big)
    with pytest.raises(InvalidRequest, match=f"larger than {MAX_BODY_BYTES} bytes"):
        body.request()
    assert body.job_id == "job-1"  # still named, so the failure can be recorded


def test_the_body_is_validated_once_whatever_asks(monkeypatch):
    calls: list[str] = []
    real = validate_module._validate

    def counting(text: str, parsed: object):
        calls.append(text)
        return real(text, parsed)

    monkeypatch.setattr(validate_module, "_validate", counting)
    valid = RequestBody(_body(metadata={"a": 1}))
    assert valid.request() is valid.request()
    assert valid.metadata == {"a": 1}
    invalid = RequestBody(json.dumps({"job_id": "j"}))
    for _ in range(3):
        with pytest.raises(InvalidRequest):
            invalid.request()
    assert invalid.metadata == {}
    assert len(calls) == 2  # one per body
