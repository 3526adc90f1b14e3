"""The base of every settings class (the `F5_WORKER_` prefix, frozen values, the one list rule) and the groups of
fields several roles share (AWS, logs, the voice cache, webhook targets). `consumer.core.settings` builds the
roles from them."""

from __future__ import annotations

import json
from typing import get_origin

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.core.errors import SettingsConflict

SQS_MAX_WAIT_S = 20
ENV_PREFIX = "F5_WORKER_"


def _split_list(value: str) -> list[object]:
    """The one rule of every list setting: comma-separated, or a JSON array."""
    text = value.strip()
    if not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    parsed = json.loads(text)  # a JSONDecodeError is a ValueError: pydantic reports it on the field
    if not isinstance(parsed, list):
        raise ValueError("not a JSON array")
    return parsed


class SettingsBase(BaseSettings):
    """What every settings class shares: the variable prefix, frozen values, the list rule."""

    # No JSON decoding by the sources: list settings are parsed by `_lists` (comma-separated or a JSON array).
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", enable_decoding=False)

    @field_validator("*", mode="before")
    @classmethod
    def _lists(cls, value: object, info: ValidationInfo) -> object:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, str) and field is not None and get_origin(field.annotation) is tuple:
            return _split_list(value)
        return value

    def _conflict(self, names: tuple[str, ...], rule: str, fix: str) -> SettingsConflict:
        return SettingsConflict({name: getattr(self, name) for name in names}, rule, fix)


# --- shared by several roles -----------------------------------------------------------------------------------------
class AwsSettings(SettingsBase):
    """What every AWS-facing role (worker, API, producers) needs to reach the queue and the bucket."""

    aws_region: str = Field("us-east-1", description="AWS region of the queue, bucket and topic.")
    aws_endpoint_url: str | None = Field(None, description="Override for moto/LocalStack, e.g. http://127.0.0.1:4566")
    queue_url: str = Field("", description="Request queue URL (required for `run`).")
    bucket: str = Field("", description="Bucket for audio, job records and the voice library.")
    jobs_prefix: str = Field("jobs", description="Key prefix of job records (claims, completions).")
    jobs_table: str = Field(
        "", description="DynamoDB table of job records (key `job_id`); empty: records are S3 objects under jobs_prefix."
    )
    jobs_table_ttl_days: float = Field(
        19.0,
        gt=0,
        description="Days a record in jobs_table lives (`expires_at`), as the lifecycle rule does for S3 records.",
    )
    jobs_index_prefix: str = Field(
        "jobs-index", description="Key prefix of the hourly index of recent jobs (`jobs list`, `status`)."
    )
    index_flush_s: float = Field(
        5.0, gt=0, le=300, description="A worker writes its jobs-index entries as one object at least this often."
    )
    workers_prefix: str = Field(
        "workers", description="Key prefix of the per-worker liveness records (`status`), one write a minute."
    )
    voices_prefix: str = Field("voices", description="Key prefix of the voice library.")
    # The SQS clients of every role size their read timeout from it (`consumer.aws.clients`).
    wait_time_s: int = Field(SQS_MAX_WAIT_S, ge=0, le=SQS_MAX_WAIT_S, description="Long-poll wait (≤ 20 s).")


class LogSettings(SettingsBase):
    """How a long-running command (worker, API) or a producer command logs."""

    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(True, description="JSON lines (false: console format).")


class VoiceCacheSettings(SettingsBase):
    """The voice cache of the worker and the API."""

    voice_revalidate_s: float = Field(
        60.0, ge=0, description="Reuse a cached voice this long before checking its S3 ETag again."
    )


class WebhookTargetSettings(SettingsBase):
    """Which webhook addresses are allowed: the worker delivers to them, `jobs redeliver` checks them first."""

    webhook_allow_private: bool = Field(
        False,
        description="Also allow loopback, RFC 1918 and IPv6 ULA webhook targets (local and private networks). "
        "Cloud metadata, link-local, multicast and reserved addresses stay refused.",
    )
