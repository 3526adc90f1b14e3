"""Events the worker publishes (SNS and webhooks). Event types are versioned: `synthesis.completed.v1`.

Compatibility rule: a `v1` event only grows by optional fields and new error codes. Consumers, `parse_event`
included, ignore fields they do not know and read an unknown `error_code` as `ErrorCode.UNKNOWN`, a generic
failure. Requests are the other way round (see `contracts.requests`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.codes import ErrorCode
from contracts.requests import AudioFormat

# Namespace for deterministic event ids: the same job and outcome always yields the same event_id,
# so a redelivered message republishes an identical event that subscribers can deduplicate.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1f3e-5b8e-4c55-9d1e-f5f5f5f5f5f5")


def event_id_for(job_id: str, outcome: str) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{job_id}:{outcome}"))


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: str = Field(description="Stable per job and outcome: deduplicate on it.")
    job_id: str
    attempt: int = Field(ge=1, description="SQS receive count of the message that produced the event.")
    generation: int = Field(
        1, ge=1, description="The job's generation: a failed job re-sent (or redriven) runs again as the next one."
    )
    worker_id: str
    occurred_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict, description="The request's metadata, echoed.")


class AudioOutput(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    uri: str = Field(description="s3://bucket/key")
    bucket: str
    key: str
    format: AudioFormat
    content_type: str
    sample_rate: int
    duration_s: float = Field(ge=0)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Timings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    queue_wait_s: float = Field(ge=0, description="Enqueue → first receive.")
    synthesis_s: float = Field(ge=0)
    total_s: float = Field(ge=0, description="Receive → event built.")
    real_time_factor: float = Field(ge=0, description="synthesis_s / audio duration_s.")


class SynthesisCompleted(_Event):
    type: Literal["synthesis.completed.v1"] = "synthesis.completed.v1"
    output: AudioOutput
    timings: Timings
    model_id: str
    seed: int
    text_chars: int
    voice_version: str | None = Field(
        None,
        description="The version of the reference clip used: its S3 VersionId where the bucket is versioned, "
        "else `sha256:` + 16 hex digits of a library clip, or `etag:` + the ETag of another clip. Absent from "
        "events of earlier versions.",
    )


class SynthesisFailed(_Event):
    type: Literal["synthesis.failed.v1"] = "synthesis.failed.v1"
    error_code: ErrorCode
    error_message: str = Field(max_length=2_000)
    retryable: bool = Field(description="True if the message was kept for another attempt.")


Event = SynthesisCompleted | SynthesisFailed  # one job's outcome, as published
SynthesisEvent = Annotated[Event, Field(discriminator="type")]
EVENT_TYPES = ("synthesis.completed.v1", "synthesis.failed.v1")
_event_adapter: TypeAdapter[Event] = TypeAdapter(SynthesisEvent)


def parse_event(body: str | bytes) -> Event:
    return _event_adapter.validate_json(body)
