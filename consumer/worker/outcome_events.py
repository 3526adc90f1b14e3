"""The events a job's outcome is announced with: built from the request, the stored audio or the error."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from consumer.storage.audio import StoredAudio
from consumer.storage.job_record import CancelRequest
from consumer.worker.message import ReceivedMessage
from contracts.codes import ErrorCode
from contracts.events import SynthesisCompleted, SynthesisFailed, Timings, event_id_for
from contracts.requests import SynthesisRequest


def completed_event(
    request: SynthesisRequest,
    text: str,
    stored: StoredAudio,
    message: ReceivedMessage,
    generation: int,
    worker_id: str,
) -> SynthesisCompleted:
    """The completion of `request`'s `generation`, from what the store holds (the first stored version, if
    another attempt's upload won)."""
    duration = stored.output.duration_s
    return SynthesisCompleted(
        event_id=event_id_for(request.job_id, "completed"),
        job_id=request.job_id,
        attempt=message.receive_count,
        generation=generation,
        worker_id=worker_id,
        occurred_at=datetime.now(UTC),
        metadata=request.metadata,
        output=stored.output,
        timings=Timings(
            queue_wait_s=message.queue_wait_s,
            synthesis_s=stored.synthesis_s,
            total_s=time.monotonic() - message.received_monotonic,
            real_time_factor=stored.synthesis_s / duration if duration > 0 else 0.0,
        ),
        model_id=stored.model_id,
        voice_version=stored.voice_version or None,
        seed=stored.seed,
        text_chars=len(text),
    )


def failed_event(
    job_id: str,
    message: ReceivedMessage,
    generation: int,
    worker_id: str,
    code: ErrorCode,
    error: str,
    *,
    retryable: bool,
    metadata: dict[str, Any] | None = None,
) -> SynthesisFailed:
    """The failure event of `job_id`'s `generation`, for the request in `message` (`metadata`: the request's,
    echoed back, when the body had a valid one)."""
    return SynthesisFailed(
        event_id=event_id_for(job_id, f"failed:{generation}"),
        job_id=job_id,
        attempt=message.receive_count,
        generation=generation,
        worker_id=worker_id,
        occurred_at=datetime.now(UTC),
        metadata=metadata or {},
        error_code=code,
        error_message=error[:2000],
        retryable=retryable,
    )


def cancel_message(cancel: CancelRequest, when: str) -> str:
    """The failure message of a cancelled job: who asked, when, and why."""
    reason = f": {cancel.reason}" if cancel.reason else ""
    return f"cancelled {when} by {cancel.by} at {cancel.at}{reason}"
