"""Contracts: round trips, rejection messages a producer can act on, committed schemas in sync."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from contracts import ErrorCode, SynthesisCompleted, SynthesisFailed, SynthesisRequest, parse_event, parse_request
from contracts.limits import MAX_METADATA_BYTES, MAX_TEXT_CHARS
from contracts.requests import describe_validation_error
from contracts.schema_export import SCHEMA_DIR, render_schemas


def _request(**overrides) -> dict:
    body = {"job_id": "job-1", "text": "Hello there.", "voice": {"voice_id": "basic-en"}}
    body.update(overrides)
    return body


def test_request_round_trip_keeps_every_field():
    request = SynthesisRequest.model_validate(
        _request(
            output={"format": "flac", "sample_rate": 48000, "key_prefix": "tenant-a/out", "target_lufs": -20},
            options={"speed": 1.2, "nfe_steps": 16, "cfg_strength": 2.5, "sway_sampling_coef": -0.5, "seed": 7},
            notify={"webhook_url": "https://example.com/hook"},
            metadata={"order": 42, "tags": ["a"]},
        )
    )
    again = parse_request(request.model_dump_json())
    assert again == request
    assert again.output.format == "flac" and again.options.seed == 7 and again.metadata["order"] == 42


def test_defaults_are_upstreams():
    request = SynthesisRequest.model_validate(_request())
    assert request.schema_version == 1
    assert (request.options.nfe_steps, request.options.cfg_strength, request.options.sway_sampling_coef) == (
        32,
        2.0,
        -1.0,
    )
    assert request.output.format == "wav" and request.output.sample_rate == 24000


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_request(text=""), "text: String should have at least 1 character"),
        (_request(text="x" * (MAX_TEXT_CHARS + 1)), f"text: String should have at most {MAX_TEXT_CHARS} characters"),
        (_request(job_id="../etc/passwd"), "job_id: String should match pattern"),
        (_request(voice={}), "give exactly one of voice_id or audio_uri"),
        (_request(voice={"voice_id": "x", "audio_uri": "s3://bucket-b/r.wav", "transcript": "t"}), "exactly one"),
        (
            _request(output={"format": "ogg"}),
            "output.format: Input should be 'wav', 'flac', 'mp3', 'opus', 'pcm' or 'aac'",
        ),
        (_request(output={"stream": True, "target_lufs": -16}), "output: Value error, stream and target_lufs"),
        (_request(output={"stream": True, "format": "flac"}), "output: Value error, stream is not offered for flac"),
        (_request(output={"key_prefix": "a/../b"}), "key_prefix must be relative"),
        (_request(output={"key_prefix": "/abs"}), "key_prefix"),
        (_request(options={"nfe_steps": 0}), "options.nfe_steps: Input should be greater than or equal to 1"),
        (_request(options={"speed": 10}), "options.speed: Input should be less than or equal to 3"),
        (_request(metadata={"blob": "x" * MAX_METADATA_BYTES}), f"at most {MAX_METADATA_BYTES}"),
        (_request(surprise=1), "surprise: Extra inputs are not permitted"),
        (_request(schema_version=2), "schema_version: Input should be 1"),
        (_request(notify={"webhook_url": "ftp://x"}), "notify.webhook_url"),
    ],
)
def test_rejections_say_what_is_wrong(body, expected):
    with pytest.raises(ValidationError) as info:
        SynthesisRequest.model_validate(body)
    assert expected in describe_validation_error(info.value)


def test_a_clip_may_come_without_its_transcript():
    """Whether that works is the worker's business (ASR configured or not), not the contract's."""
    request = SynthesisRequest.model_validate(_request(voice={"audio_uri": "s3://bucket-a/ref.wav"}))
    assert request.voice.audio_uri == "s3://bucket-a/ref.wav" and request.voice.transcript is None
    with pytest.raises(ValidationError, match="transcript"):  # given, it must still be non-blank
        SynthesisRequest.model_validate(_request(voice={"audio_uri": "s3://bucket-a/ref.wav", "transcript": "  "}))


def test_invalid_json_is_a_validation_error():
    with pytest.raises(ValidationError, match="Invalid JSON"):
        parse_request(b"{not json")


def test_events_round_trip_through_the_discriminated_union():
    completed = {
        "event_id": "e1",
        "job_id": "j",
        "attempt": 1,
        "worker_id": "w",
        "occurred_at": "2026-01-01T00:00:00Z",
        "type": "synthesis.completed.v1",
        "model_id": "m",
        "seed": 1,
        "text_chars": 3,
        "output": {
            "uri": "s3://b/k.wav",
            "bucket": "b",
            "key": "k.wav",
            "format": "wav",
            "content_type": "audio/wav",
            "sample_rate": 24000,
            "duration_s": 1.0,
            "bytes": 10,
            "sha256": "0" * 64,
        },
        "timings": {"queue_wait_s": 0, "synthesis_s": 1, "total_s": 2, "real_time_factor": 1},
    }
    failed = {
        "event_id": "e2",
        "job_id": "j",
        "attempt": 2,
        "worker_id": "w",
        "occurred_at": "2026-01-01T00:00:00Z",
        "type": "synthesis.failed.v1",
        "error_code": "unknown_voice",
        "error_message": "no",
        "retryable": False,
    }
    assert isinstance(parse_event(json.dumps(completed)), SynthesisCompleted)
    event = parse_event(json.dumps(failed))
    assert isinstance(event, SynthesisFailed) and event.error_code == "unknown_voice"


def test_newer_events_parse_with_old_contracts():
    """The compatibility rule: consumers ignore unknown fields and read an unknown error code as generic."""
    newer = {
        "event_id": "e3",
        "job_id": "j",
        "attempt": 1,
        "worker_id": "w",
        "occurred_at": "2026-01-01T00:00:00Z",
        "type": "synthesis.failed.v1",
        "error_code": "quota_exceeded",  # a code a later version adds
        "error_message": "too many jobs",
        "retryable": False,
        "region": "eu-west-1",  # a field a later version adds
    }
    event = parse_event(json.dumps(newer))
    assert isinstance(event, SynthesisFailed)
    assert event.error_code is ErrorCode.UNKNOWN and event.error_message == "too many jobs"
    assert "region" not in event.model_dump()


def test_requests_reject_unknown_fields():
    """Workers reject what they do not know (a typo must not silently drop an option)."""
    body = {"job_id": "job-1", "text": "Hello.", "voice": {"voice_id": "narrator"}, "voise": "x"}
    with pytest.raises(ValidationError, match="voise"):
        parse_request(json.dumps(body))


def test_committed_schemas_match_the_models():
    for name, text in render_schemas().items():
        committed = (SCHEMA_DIR / name).read_text()
        assert committed == text, f"{name} drifted: run `python -m contracts.schema_export` and commit"


def test_contracts_import_neither_torch_nor_boto3():
    code = (
        "import sys, contracts, contracts.events, contracts.requests, contracts.schema_export\n"
        "assert contracts.SynthesisRequest and contracts.ErrorCode.INTERNAL\n"
        "print(sorted({'torch', 'boto3', 'botocore', 'consumer'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_settings_reference_is_generated_from_the_settings(repo_root):
    from consumer.core.settings import Settings
    from consumer.core.settings_doc import render_settings_doc

    doc = (repo_root / "docs" / "settings.md").read_text()
    assert doc == render_settings_doc(), "run `python -m consumer.core.settings_doc` and commit docs/settings.md"
    assert all(field.description for field in Settings.model_fields.values())
