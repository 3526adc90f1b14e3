"""The job record, `{jobs_prefix}/{job_id}.json`, as one typed model: the only way it is written or read.

A discriminated union on `status` (see `consumer/storage/jobs.py` for the transitions between them):

    InProgress  a worker holds the job until `expires_at` (its progress, the delivery that opened it)
    Released    given up for another attempt (or created by a cancel before any worker saw the job)
    Completed   final: the completion event, the webhook and its delivery log (a streamed job: its blocks)
    Failed      the failure event, why and on which delivery; a new message for the job may reopen it

Additive rule, as for events: a record only grows by optional fields. A field this version does not know is
ignored when read and kept when the record is rewritten (`extra="allow"`), so an older worker reads and updates a
newer worker's record without losing anything.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_serializer

from contracts.codes import ErrorCode
from contracts.events import SynthesisCompleted, SynthesisFailed

DELIVERY_LOG_SIZE = 10  # webhook attempts kept per record (the newest)


class JobStatus(StrEnum):
    INPROGRESS = "INPROGRESS"
    RELEASED = "RELEASED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


TERMINAL = (JobStatus.COMPLETED, JobStatus.FAILED)


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class CancelRequest(_Part):
    """Someone asked to cancel the job: the owner stops at its next write, a new owner before it starts."""

    by: str
    reason: str = ""
    at: str


class Opened(_Part):
    """The delivery that opened this generation (a re-send or a redrive): its MessageId and receive count. A queue
    may keep a redriven message's id and count (LocalStack does); the generation's attempts count from here."""

    message_id: str
    receive: int = 1


class ChunkProgress(_Part):
    """Where the owner's synthesis is: chunk `chunk` of `chunks` (== chunks: encoding and uploading)."""

    chunk: int
    chunks: int
    eta_s: float | None = None


class StreamRef(_Part):
    """The block sequence a streamed job completed with (`consumer.storage.stream_blocks`): its key prefix and
    how many blocks and bytes it holds (the final object's bytes, a WAV's header sizes aside)."""

    prefix: str
    blocks: int
    bytes: int


class Release(_Part):
    """Why a worker gave the job up, and which delivery it held."""

    reason: str
    error_code: str | None = None
    by: str = ""
    message_id: str = ""
    attempt: int = 1
    at: str = ""


class Failure(_Part):
    """Why the job failed, on which delivery; `redrivable`: its message went to the DLQ (retries ran out)."""

    error_code: str
    error_message: str = ""
    attempt: int = 0
    message_id: str = ""
    redrivable: bool = False


class Delivery(_Part):
    """The webhook's delivery state and its newest attempts (`DELIVERY_LOG_SIZE`)."""

    state: DeliveryState | None = None
    attempts: list[dict[str, Any]] = Field(default_factory=list)
    count: int = 0


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    job_id: str
    generation: int = 1
    write_id: str = ""  # unique per state write: a record equal to a body we sent is our own write, stored
    cancel: CancelRequest | None = None
    opened: Opened | None = None

    @property
    def terminal(self) -> bool:
        return False

    def dump(self) -> bytes:
        """The stored form. Optional parts that are absent are left out, as records always had them."""
        fields = self.model_dump(mode="json")
        for name in _ABSENT_WHEN_NONE:
            if fields.get(name, "") is None:
                del fields[name]
        return json.dumps(fields).encode()


_ABSENT_WHEN_NONE = ("cancel", "opened", "released", "stream")


class InProgress(_Record):
    status: Literal[JobStatus.INPROGRESS] = JobStatus.INPROGRESS
    worker_id: str
    message_id: str = ""
    attempt: int = 1
    started_at: str = ""
    expires_at: datetime
    progress: ChunkProgress | None = None

    @field_serializer("expires_at")
    def _iso(self, value: datetime) -> str:
        return value.isoformat()

    def live(self, now: datetime) -> bool:
        """Whether the claim still holds at `now`."""
        return self.expires_at > now


class Released(_Record):
    status: Literal[JobStatus.RELEASED] = JobStatus.RELEASED
    released: Release | None = None  # None: a cancel arrived before any worker saw the job


class _Finished(_Record):
    worker_id: str = ""
    started_at: str = ""
    finished_at: str = ""
    webhook_url: str | None = None
    delivery: Delivery = Field(default_factory=Delivery)

    @property
    def terminal(self) -> bool:
        return True

    @property
    def delivered(self) -> bool:
        return self.delivery.state == DeliveryState.DELIVERED


class Completed(_Finished):
    status: Literal[JobStatus.COMPLETED] = JobStatus.COMPLETED
    event: SynthesisCompleted
    stream: StreamRef | None = None  # a streamed job's block sequence


class Failed(_Finished):
    status: Literal[JobStatus.FAILED] = JobStatus.FAILED
    event: SynthesisFailed
    failure: Failure

    @property
    def cancelled(self) -> bool:
        return self.failure.error_code == ErrorCode.CANCELLED


JobRecord = Annotated[InProgress | Released | Completed | Failed, Field(discriminator="status")]
Finished = Completed | Failed
_adapter: TypeAdapter[InProgress | Released | Completed | Failed] = TypeAdapter(JobRecord)


def parse_record(body: str | bytes) -> InProgress | Released | Completed | Failed:
    """A stored record (raises pydantic's `ValidationError` for one this version cannot read)."""
    return _adapter.validate_json(body)
