"""Worker settings: one frozen object read from `F5_WORKER_*` environment variables, built once in `main`.

Torch-free and boto3-free, so the CLI and producers can read it cheaply.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Literal, get_origin

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SQS_MAX_WAIT_S = 20
SQS_MAX_VISIBILITY_S = 12 * 3600
MAX_IN_FLIGHT = 64  # a fixed max_in_flight: at most this many slots
AUTO_CAP = 32  # max_in_flight auto: at most this many messages in flight, whatever the measurements say


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def _split_list(value: str) -> list[object]:
    """The one rule of every list setting: comma-separated, or a JSON array."""
    text = value.strip()
    if not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    parsed = json.loads(text)  # a JSONDecodeError is a ValueError: pydantic reports it on the field
    if not isinstance(parsed, list):
        raise ValueError("not a JSON array")
    return parsed


class Settings(BaseSettings):
    # No JSON decoding by the sources: list settings are parsed by `_lists` (comma-separated or a JSON array).
    model_config = SettingsConfigDict(env_prefix="F5_WORKER_", frozen=True, extra="ignore", enable_decoding=False)

    # --- AWS -------------------------------------------------------------------------------------------
    aws_region: str = Field("us-east-1", description="AWS region of the queue, bucket and topic.")
    aws_endpoint_url: str | None = Field(None, description="Override for moto/LocalStack, e.g. http://127.0.0.1:4566")
    queue_url: str = Field("", description="Request queue URL (required for `run`).")
    bucket: str = Field("", description="Bucket for audio, job records and the voice library.")
    output_prefix: str = Field("outputs", description="Default key prefix of audio objects.")
    jobs_prefix: str = Field("jobs", description="Key prefix of job records (claims, completions).")
    jobs_index_prefix: str = Field(
        "jobs-index", description="Key prefix of the hourly index of recent jobs (`jobs list`, `status`)."
    )
    workers_prefix: str = Field(
        "workers", description="Key prefix of the per-worker liveness records (`status`), one write a minute."
    )
    voices_prefix: str = Field("voices", description="Key prefix of the voice library.")
    allowed_output_buckets: tuple[str, ...] = Field(
        (), description="Extra buckets a request may write to; the worker's own bucket is always allowed."
    )
    allowed_reference_buckets: tuple[str, ...] = Field(
        (),
        description="Extra buckets references may be read from; the worker's own bucket is always allowed.",
    )
    voice_revalidate_s: float = Field(
        60.0, ge=0, description="Reuse a cached voice this long before checking its S3 ETag again."
    )
    topic_arn: str | None = Field(None, description="SNS topic for completion/failure events.")
    events_queue_url: str | None = Field(None, description="Producers: an SQS queue subscribed to the topic (`say`).")

    # --- Queue behaviour ---------------------------------------------------------------------------------
    wait_time_s: int = Field(SQS_MAX_WAIT_S, ge=0, le=SQS_MAX_WAIT_S, description="Long-poll wait (≤ 20 s).")
    visibility_timeout_s: int = Field(
        120, ge=2, le=SQS_MAX_VISIBILITY_S, description="Visibility per receive and per heartbeat extension."
    )
    heartbeat_interval_s: float = Field(30.0, gt=0, description="Extend visibility this often while a job runs.")
    progress_interval_s: float = Field(
        5.0, gt=0, description="Write a running job's progress (chunk i of n) to its record at most this often."
    )
    job_timeout_s: float = Field(
        900.0, gt=0, description="Hard limit for one job, plus `job_timeout_per_1k_chars_s`; it then fails (retryable)."
    )
    job_timeout_per_1k_chars_s: float = Field(
        60.0, ge=0, description="Extra job time per 1,000 characters of text: a chapter gets the time it needs."
    )
    longform_above_chars: int = Field(
        5_000,
        ge=1,
        description="Texts longer than this are synthesized chunk by chunk into a file under `scratch_dir` and "
        "uploaded from it: memory stays bounded by a few chunks, not by the text.",
    )
    scratch_dir: Path | None = Field(
        None, description="Where long-form jobs keep their temporary audio (default: the system's temp dir)."
    )
    max_in_flight: int | Literal["auto"] = Field(
        "auto",
        description="Messages held at once. auto: as many as keep the device busy through AWS round trips, from "
        f"measured device and round-trip times (at most {AUTO_CAP}); a number (1-{MAX_IN_FLIGHT}): fixed slots.",
    )
    device_queue_s: float = Field(
        2.0,
        ge=0,
        le=60,
        description="auto max_in_flight: device work (seconds) held ready beyond what covers the round trips, so "
        "receives come in batches; a message waits behind others for about this long at most.",
    )
    delete_batch_window_s: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Finished messages are deleted in batches (DeleteMessageBatch) gathered this long; 0: each "
        "at once. Their outcomes are recorded first: a delete lost to a crash only replays an outcome.",
    )
    retry_base_delay_s: int = Field(5, ge=0, le=900, description="Backoff of the first retry; doubles per attempt.")
    retry_max_delay_s: int = Field(900, ge=0, le=SQS_MAX_VISIBILITY_S, description="Backoff ceiling.")
    max_receive_count: int | None = Field(
        None, ge=1, description="Override; by default read from the queue's redrive policy at start."
    )
    shutdown_grace_s: float = Field(60.0, ge=0, description="Time to finish in-flight jobs after SIGTERM.")
    burst: bool = Field(False, description="Exit once the queue is empty and nothing is in flight.")

    # --- Engine -----------------------------------------------------------------------------------------
    engine: str = Field("f5", pattern="^(f5|fake)$", description="fake: a tone generator for tests of the consumer.")
    fake_work_s: float = Field(0.0, ge=0, description="fake engine only: wall time per synthesis.")
    model_dir: Path | None = Field(None, description="Prepared model directory (model.json + weights).")
    checkpoint: str | None = Field(None, description="Checkpoint path or hf://... URL; F5TTS_v1_Base architecture.")
    vocoder: str = Field("charactr/vocos-mel-24khz", description="Vocoder directory or hub id.")
    device: str | None = Field(None, description="cuda, cuda:1, cpu; default: cuda if available.")
    dtype: str | None = Field(
        None, pattern="^(float32|float16|bfloat16)$", description="Default: float16 on CUDA, float32 on CPU."
    )
    attention_backend: str = Field(
        "auto",
        pattern="^(auto|torch|flash_attn)$",
        description="auto: flash-attn on CUDA in float16/bfloat16 when installed, else torch SDPA.",
    )
    vocab: Path | None = Field(None, description="With checkpoint: a fine-tuned model's vocab.txt (default: F5's).")
    architecture: str = Field(
        "F5TTS_v1_Base",
        description="With checkpoint: an f5-tts config name, a training config .yaml or a model.json.",
    )
    warm_up: bool = Field(True, description="Run one short synthesis at start.")
    asr_model: str | None = Field(
        None,
        description="Local directory or hub id of a Whisper model (e.g. openai/whisper-large-v3-turbo baked into the "
        "image) that transcribes reference clips sent without a transcript; unset or empty: transcripts are required.",
    )
    asr_language: str | None = Field(
        None, description="Language of reference clips for the ASR model (en, english...); default: detected per clip."
    )
    batch_max_size: int = Field(
        1,
        ge=1,
        le=64,
        description="Messages synthesized together in one forward pass (f5 engine; 1: no batching). "
        "Needs max_in_flight >= this. For GPUs: on CPU it was measured slower (benchmarks/throughput.py).",
    )
    batch_window_ms: float = Field(
        20.0, ge=0, le=1000, description="Wait this long after a message arrives for others to batch it with."
    )
    cache_dir: Path = Field(Path.home() / ".cache" / "f5-worker", description="Generated models (local runs).")

    # --- Notifications ------------------------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        None,
        description="Standard Webhooks secret (whsec_...) that signs webhooks. To rotate, give several separated "
        "by spaces or commas: every one signs each delivery (receivers accept any).",
    )
    webhook_allow_private: bool = Field(
        False,
        description="Also allow loopback, RFC 1918 and IPv6 ULA webhook targets (local and private networks). "
        "Cloud metadata, link-local, multicast and reserved addresses stay refused.",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, description="Per webhook POST.")
    webhook_senders: int = Field(2, ge=1, le=32, description="Threads that deliver webhooks, apart from the jobs.")
    webhook_inline_attempts: int = Field(
        3, ge=1, le=10, description="Delivery attempts in process (with backoff) before a queued retry takes over."
    )
    webhook_retry_base_s: float = Field(
        30.0, ge=0, le=900, description="Delay of the first queued delivery retry; doubles per attempt, at most 900 s."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=100, description="Queued delivery attempts before the record says delivery_failed."
    )
    webhook_max_age_s: float = Field(
        86_400.0, gt=0, description="No delivery retry is queued this long after the job finished."
    )
    notify_attempts: int = Field(4, ge=1, le=10, description="In-process attempts per notification target.")

    # --- HTTP API (`f5-worker api`) ---------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Address the API listens on (keyless only on loopback).")
    api_port: int = Field(8000, ge=0, le=65535, description="Port of the API.")
    api_key_hashes: tuple[str, ...] = Field(
        (),
        description="API keys as `name:sha256hex` (from `f5-worker api keys create NAME`), comma-separated. None: "
        "keyless, allowed on a loopback address only.",
    )
    api_speech_wait_s: float = Field(
        120.0, gt=0, le=3600, description="`/v1/audio/speech` waits this long for the audio, then answers 504."
    )
    api_rate_per_minute: float = Field(
        120.0, gt=0, description="Requests per minute per key (token bucket, per API replica); then 429."
    )
    api_max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest JSON body the API reads.")
    api_max_upload_bytes: int = Field(20_000_000, ge=1024, description="Largest voice clip upload.")
    api_cors_origins: tuple[str, ...] = Field((), description="Origins allowed by CORS (none: CORS off).")
    api_events_queue_url: str | None = Field(
        None,
        description="An SQS queue subscribed to the topic for this API replica alone (raw delivery): waiting "
        "requests wake when their event arrives. Without it, the jobs index is polled every 250 ms.",
    )
    api_jobs_prefix: str = Field(
        "api-jobs", description="Key prefix of the API's job markers (owner key, body hash: idempotency)."
    )

    # --- Process --------------------------------------------------------------------------------------------
    worker_id: str = Field(default_factory=_default_worker_id, description="Names this process in claims/events.")
    health_port: int | None = Field(None, ge=0, le=65535, description="Serve /healthz /readyz /metrics here.")
    health_max_poll_age_s: float = Field(90.0, gt=0, description="/healthz fails when no poll succeeded since.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(True, description="JSON lines (false: console format).")

    @field_validator("*", mode="before")
    @classmethod
    def _lists(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and info.field_name and is_list_field(info.field_name):
            return _split_list(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.heartbeat_interval_s >= self.visibility_timeout_s:
            raise ValueError(
                f"heartbeat_interval_s ({self.heartbeat_interval_s}) must be below "
                f"visibility_timeout_s ({self.visibility_timeout_s})"
            )
        if self.retry_base_delay_s > self.retry_max_delay_s:
            raise ValueError("retry_base_delay_s must not exceed retry_max_delay_s")
        if self.model_dir is not None and self.checkpoint is not None:
            raise ValueError("give model_dir or checkpoint, not both")
        if self.model_dir is not None and (self.vocab is not None or "architecture" in self.model_fields_set):
            raise ValueError("vocab and architecture go with checkpoint; a model_dir's model.json names its own")
        if isinstance(self.max_in_flight, int) and not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be auto or a number from 1 to {MAX_IN_FLIGHT}")
        if isinstance(self.max_in_flight, int) and self.max_in_flight < self.batch_max_size:
            raise ValueError(
                f"batch_max_size ({self.batch_max_size}) needs at least as many messages in flight: raise "
                f"F5_WORKER_MAX_IN_FLIGHT (now {self.max_in_flight}) to {self.batch_max_size} or more"
            )
        return self


def is_list_field(name: str) -> bool:
    return get_origin(Settings.model_fields[name].annotation) is tuple


def render_settings_doc() -> str:
    """docs/settings.md, generated from the fields above (a test keeps it in sync)."""
    rows = [
        "# Settings reference",
        "",
        "Environment variables (prefix `F5_WORKER_`), read once at start by `consumer/core/settings.py`.",
        "Cross-field rules: `heartbeat_interval_s < visibility_timeout_s`; `retry_base_delay_s <= retry_max_delay_s`;",
        "`model_dir` and `checkpoint` are exclusive (`vocab`, `architecture` go with `checkpoint`); "
        "`max_in_flight >= batch_max_size` when `max_in_flight` is a number.",
        f"Lists ({', '.join(f'`{name}`' for name in Settings.model_fields if is_list_field(name))}) are "
        'comma-separated (`a,b`); a JSON array (`["a","b"]`) works too.',
        "Invalid settings stop `f5-worker run` with exit code 2.",
        "Regenerate with `python -m consumer.core.settings`.",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = "(generated)" if field.default_factory is not None else field.default
        if name == "cache_dir":
            default = "~/.cache/f5-worker"
        if is_list_field(name) and not default:
            default = "(empty list)"
        rows.append(f"| `F5_WORKER_{name.upper()}` | `{default}` | {field.description or ''} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    (Path(__file__).resolve().parents[2] / "docs" / "settings.md").write_text(render_settings_doc())
