"""Work the worker queues for itself on the request queue, besides synthesis requests. A message is a task when
its `f5-worker-kind` message attribute names one; anything else is a `SynthesisRequest`.

`deliver.v1`: deliver a finished job's event to its webhook again (a queued retry, or `f5-worker jobs redeliver`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import limits

KIND_ATTRIBUTE = "f5-worker-kind"
DELIVER_KIND = "deliver.v1"


class DeliveryTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["deliver.v1"] = "deliver.v1"  # DELIVER_KIND
    job_id: str = Field(pattern=limits.JOB_ID_PATTERN)
    attempt: int = Field(1, ge=1, description="The queued delivery attempt this task makes.")
    first_at: datetime = Field(description="When the job finished: retries stop `webhook_max_age_s` after it.")
    not_before: datetime = Field(description="Not delivered before this (FIFO queues cannot delay one message).")
    manual: bool = Field(False, description="Sent by `jobs redeliver`: publish to SNS again too, ignore the caps.")
