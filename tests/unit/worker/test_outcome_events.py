"""Outcome events: ids stable per job, outcome and generation; the request's metadata echoed; timings from
the stored audio; error messages clipped; the cancel message."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.storage.audio import StoredAudio
from consumer.storage.job_record import CancelRequest
from consumer.worker.message import ReceivedMessage
from consumer.worker.outcome_events import cancel_message, completed_event, failed_event
from contracts.codes import ErrorCode
from contracts.events import AudioOutput, event_id_for
from contracts.requests import SynthesisRequest

SENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _message(receive_count: int = 2, queue_wait_s: float = 1.5, received_ago_s: float = 0.0) -> ReceivedMessage:
    return ReceivedMessage(
        message_id="m-1",
        receipt_handle="r-1",
        body="{}",
        receive_count=receive_count,
        sent_at=SENT,
        first_received_at=SENT + timedelta(seconds=queue_wait_s),
        received_monotonic=time.monotonic() - received_ago_s,
    )


def _request(**fields) -> SynthesisRequest:
    return SynthesisRequest.model_validate({"job_id": "job-7", "text": "Hello.", "voice": {"voice_id": "v"}} | fields)


def _stored(duration_s: float = 4.0, synthesis_s: float = 2.0, voice_version: str = "v3") -> StoredAudio:
    output = AudioOutput(
        uri="s3://b/out/job-7.wav",
        bucket="b",
        key="out/job-7.wav",
        format="wav",
        content_type="audio/wav",
        sample_rate=24000,
        duration_s=duration_s,
        bytes=100,
        sha256="0" * 64,
    )
    return StoredAudio(output, seed=42, model_id="f5-tiny", synthesis_s=synthesis_s, voice_version=voice_version)


def test_completed_event_describes_the_stored_audio_and_echoes_the_metadata():
    request = _request(metadata={"order": 17, "tag": "x"})
    event = completed_event(request, "Hello there.", _stored(), _message(receive_count=3), 2, "worker-a")
    assert event.event_id == event_id_for("job-7", "completed")
    assert (event.job_id, event.attempt, event.generation, event.worker_id) == ("job-7", 3, 2, "worker-a")
    assert event.metadata == {"order": 17, "tag": "x"}
    assert event.output.uri == "s3://b/out/job-7.wav"
    assert (event.model_id, event.seed, event.voice_version, event.text_chars) == ("f5-tiny", 42, "v3", 12)


def test_completed_timings_come_from_the_message_and_the_stored_audio():
    event = completed_event(
        _request(), "Hi.", _stored(4.0, 2.0), _message(queue_wait_s=1.5, received_ago_s=3.0), 1, "w"
    )
    assert event.timings.queue_wait_s == pytest.approx(1.5)
    assert event.timings.synthesis_s == 2.0
    assert event.timings.real_time_factor == pytest.approx(0.5)
    assert 3.0 <= event.timings.total_s < 13.0  # since the receive


def test_completed_real_time_factor_of_empty_audio_is_zero_and_an_empty_voice_version_is_none():
    event = completed_event(_request(), "Hi.", _stored(duration_s=0.0, voice_version=""), _message(), 1, "w")
    assert event.timings.real_time_factor == 0.0
    assert event.voice_version is None


def test_the_completed_event_id_is_the_same_for_every_attempt_of_the_job():
    first = completed_event(_request(), "Hi.", _stored(), _message(receive_count=1), 1, "w1")
    again = completed_event(_request(), "Hi.", _stored(), _message(receive_count=4), 1, "w2")
    other_job = completed_event(_request(job_id="job-8"), "Hi.", _stored(), _message(), 1, "w1")
    assert first.event_id == again.event_id != other_job.event_id


def test_failed_event_ids_are_stable_per_job_and_generation():
    def failed(job_id: str, generation: int, receive_count: int = 1):
        return failed_event(
            job_id, _message(receive_count), generation, "w", ErrorCode.TIMEOUT, "too slow", retryable=True
        )

    assert failed("job-7", 1).event_id == failed("job-7", 1, receive_count=3).event_id
    assert failed("job-7", 1).event_id == event_id_for("job-7", "failed:1")
    assert failed("job-7", 2).event_id != failed("job-7", 1).event_id
    assert failed("job-8", 1).event_id != failed("job-7", 1).event_id
    completed = completed_event(_request(), "Hi.", _stored(), _message(), 1, "w")
    assert failed("job-7", 1).event_id != completed.event_id


def test_failed_event_carries_the_code_retryability_and_metadata():
    event = failed_event(
        "job-7",
        _message(receive_count=2),
        3,
        "worker-b",
        ErrorCode.UNKNOWN_VOICE,
        "no such voice",
        retryable=False,
        metadata={"k": "v"},
    )
    assert (event.error_code, event.error_message, event.retryable) == (ErrorCode.UNKNOWN_VOICE, "no such voice", False)
    assert (event.attempt, event.generation, event.worker_id, event.metadata) == (2, 3, "worker-b", {"k": "v"})


def test_failed_event_without_metadata_has_an_empty_dict():
    event = failed_event("job-7", _message(), 1, "w", ErrorCode.INVALID_REQUEST, "bad", retryable=False)
    assert event.metadata == {}


def test_a_long_error_message_is_clipped_to_2000_characters():
    error = "x" * 1999 + "yz" + "tail" * 100
    event = failed_event("job-7", _message(), 1, "w", ErrorCode.INTERNAL, error, retryable=True)
    assert len(event.error_message) == 2000
    assert event.error_message == error[:2000] and event.error_message.endswith("y")


def test_cancel_message_names_who_when_and_why():
    cancel = CancelRequest(by="ana@laptop", reason="wrong text", at="2026-01-02T03:04:05+00:00")
    assert cancel_message(cancel, "while queued") == (
        "cancelled while queued by ana@laptop at 2026-01-02T03:04:05+00:00: wrong text"
    )
    no_reason = CancelRequest(by="ops", at="t0")
    assert cancel_message(no_reason, "at chunk 2/5") == "cancelled at chunk 2/5 by ops at t0"
