"""The job record model: the stored form, the discriminated union, and the additive rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from consumer.storage.job_record import (
    CancelRequest,
    Failed,
    InProgress,
    JobStatus,
    Released,
    parse_record,
)
from contracts.codes import ErrorCode
from contracts.events import SynthesisFailed

EXPIRES = datetime(2030, 1, 1, tzinfo=UTC)


def _failed_event() -> SynthesisFailed:
    return SynthesisFailed(
        event_id="e",
        job_id="j",
        attempt=1,
        worker_id="w",
        occurred_at=EXPIRES,
        error_code=ErrorCode.CANCELLED,
        error_message="cancelled by op",
        retryable=False,
    )


def test_each_status_parses_to_its_own_model():
    base = {"job_id": "j", "generation": 2}
    assert isinstance(parse_record(json.dumps(base | {"status": "RELEASED"})), Released)
    running = parse_record(
        json.dumps(base | {"status": "INPROGRESS", "worker_id": "w", "expires_at": "2030-01-01T00:00:00+00:00"})
    )
    assert isinstance(running, InProgress) and running.status == JobStatus.INPROGRESS and running.generation == 2
    assert running.live(datetime(2029, 1, 1, tzinfo=UTC)) and not running.live(EXPIRES)
    with pytest.raises(ValidationError):
        parse_record(json.dumps(base | {"status": "DONE"}))
    with pytest.raises(ValidationError):  # a completed record without its event is not a record
        parse_record(json.dumps(base | {"status": "COMPLETED"}))


def test_the_stored_form_leaves_out_absent_parts_and_keeps_the_expiry_as_iso_offset():
    stored = json.loads(InProgress(job_id="j", worker_id="w", expires_at=EXPIRES).dump())
    assert "cancel" not in stored and "opened" not in stored and stored["progress"] is None
    assert stored["expires_at"] == "2030-01-01T00:00:00+00:00" and stored["status"] == "INPROGRESS"
    cancel = CancelRequest(by="op", at="2030-01-01T00:00:00+00:00")
    queued = json.loads(Released(job_id="j", cancel=cancel).dump())
    assert queued == {
        "job_id": "j",
        "generation": 1,
        "write_id": "",
        "cancel": {"by": "op", "reason": "", "at": "2030-01-01T00:00:00+00:00"},
        "status": "RELEASED",
    }


def test_a_dumped_record_reads_back_equal():
    failed = Failed(job_id="j", event=_failed_event(), failure={"error_code": "cancelled", "attempt": 3})
    again = parse_record(failed.dump())
    assert again == failed and isinstance(again, Failed) and again.cancelled and again.terminal
    assert again.failure.attempt == 3 and not again.delivered


def test_an_unknown_field_is_ignored_on_read_and_kept_on_rewrite():
    """An older worker reads a newer worker's record, and updating it loses nothing the newer one wrote."""
    newer = json.loads(Failed(job_id="j", event=_failed_event(), failure={"error_code": "cancelled"}).dump())
    newer["shard"] = "eu-1"
    newer["failure"]["trace_id"] = "t-9"
    read = parse_record(json.dumps(newer))
    assert isinstance(read, Failed) and read.failure.error_code == "cancelled"
    rewritten = json.loads(read.model_copy(update={"webhook_url": "https://example.com/h"}).dump())
    assert rewritten["shard"] == "eu-1" and rewritten["failure"]["trace_id"] == "t-9"
    assert rewritten["webhook_url"] == "https://example.com/h"


def test_an_unknown_error_code_in_a_stored_event_reads_as_unknown():
    stored = json.loads(Failed(job_id="j", event=_failed_event(), failure={"error_code": "cancelled"}).dump())
    stored["event"]["error_code"] = "quota_exceeded"  # a newer worker's code
    stored["failure"]["error_code"] = "quota_exceeded"
    read = parse_record(json.dumps(stored))
    assert isinstance(read, Failed) and read.event.error_code == ErrorCode.UNKNOWN
    assert read.failure.error_code == "quota_exceeded" and not read.cancelled


def test_a_completed_record_needs_a_completion_event():
    stored = {
        "status": "COMPLETED",
        "job_id": "j",
        "event": json.loads(_failed_event().model_dump_json()) | {"type": "synthesis.completed.v1"},
    }
    with pytest.raises(ValidationError):  # a failure event cannot be a completion
        parse_record(json.dumps(stored))
