"""Settings read from `F5_WORKER_*` environment variables: one frozen class per role, each loadable on its own
(`ApiSettings()` reads only the API's variables), and `Settings`, all of them, built once by `run` and `local`.

Torch-free and boto3-free, so the CLI and producers can read it cheaply. Error messages: `settings_errors`;
docs/settings.md: `settings_doc`.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_origin

from pydantic import Field, SecretStr, ValidationError, model_validator

from consumer.core.settings_base import ENV_PREFIX as ENV_PREFIX  # re-exported: callers read them here
from consumer.core.settings_base import SQS_MAX_WAIT_S as SQS_MAX_WAIT_S
from consumer.core.settings_base import (
    AwsSettings,
    LogSettings,
    SettingsBase,
    VoiceCacheSettings,
    WebhookTargetSettings,
)

SQS_MAX_VISIBILITY_S = 12 * 3600
MAX_IN_FLIGHT = 64  # a fixed max_in_flight: at most this many slots
AUTO_CAP = 32  # max_in_flight auto: at most this many messages in flight, whatever the measurements say
# Named in messages, their values never shown.
SECRET_SETTINGS = frozenset({"webhook_secret", "api_key_hashes", "fleet_runpod_api_key", "health_token"})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine reaches it (0.0.0.0, "" and :: are every address)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


# --- one class per role ----------------------------------------------------------------------------------------------
class WorkerSettings(LogSettings, VoiceCacheSettings, WebhookTargetSettings, AwsSettings):
    """`f5-worker run`, with `EngineSettings`: queue behaviour, outputs, notifications, the process."""

    output_prefix: str = Field("outputs", description="Default key prefix of audio objects.")
    allowed_output_buckets: tuple[str, ...] = Field(
        (), description="Extra buckets a request may write to; the worker's own bucket is always allowed."
    )
    allowed_reference_buckets: tuple[str, ...] = Field(
        (),
        description="Extra buckets references may be read from; the worker's own bucket is always allowed.",
    )
    topic_arn: str | None = Field(None, description="SNS topic for completion/failure events.")

    # --- Queue behaviour ---------------------------------------------------------------------------------
    visibility_timeout_s: int = Field(
        120, ge=2, le=SQS_MAX_VISIBILITY_S, description="Visibility per receive and per heartbeat extension."
    )
    heartbeat_interval_s: float = Field(
        30.0, gt=0, description="Extend visibility this often while a job runs (below the visibility timeout)."
    )
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
    max_in_flight: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_IN_FLIGHT)] = Field(
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
    dead_letter_check_s: float = Field(
        60.0,
        ge=0,
        description="Every this many seconds the worker looks through a page of the DLQ and records a failure "
        "(retries_exhausted, with its event) for any dead letter whose job has no outcome; 0: off.",
    )
    shutdown_grace_s: float = Field(60.0, ge=0, description="Time to finish in-flight jobs after SIGTERM.")
    burst: bool = Field(False, description="Exit once the queue is empty and nothing is in flight.")

    # --- Notifications ------------------------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        None,
        description="Standard Webhooks secret (whsec_...) that signs webhooks. To rotate, give several separated "
        "by spaces or commas: every one signs each delivery (receivers accept any).",
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

    # --- Process --------------------------------------------------------------------------------------------
    worker_id: str = Field(default_factory=_default_worker_id, description="Names this process in claims/events.")
    health_port: int | None = Field(None, ge=0, le=65535, description="Serve /healthz /readyz /metrics here.")
    health_host: str = Field(
        "127.0.0.1",
        description="Address the health port listens on; another than loopback needs health_token (/metrics).",
    )
    health_token: SecretStr | None = Field(
        None, description="Bearer token /metrics requires (Prometheus: `authorization`); /healthz /readyz stay open."
    )
    health_max_poll_age_s: float = Field(90.0, gt=0, description="/healthz fails when no poll succeeded since.")
    cloudwatch_metrics: bool = Field(
        False,
        description="Also publish jobs completed, failed by code, RTF and queue wait to CloudWatch: one PutMetricData "
        "a worker an interval, dimension Queue (cost: docs/deploying.md).",
    )
    cloudwatch_namespace: str = Field("F5Worker", description="The CloudWatch namespace of those metrics.")
    cloudwatch_metrics_interval_s: float = Field(
        60.0, ge=10, le=3600, description="Seconds between a worker's PutMetricData calls (and what each covers)."
    )

    @model_validator(mode="after")
    def _worker_rules(self) -> WorkerSettings:
        for name, (_, derive) in DERIVED_DEFAULTS.items():
            if name not in self.model_fields_set:
                self.__dict__[name] = derive(self)  # frozen model: set while it is being built
        if self.heartbeat_interval_s >= self.visibility_timeout_s:
            raise self._conflict(
                ("heartbeat_interval_s", "visibility_timeout_s"),
                "the heartbeat must extend the visibility before it runs out",
                "lower F5_WORKER_HEARTBEAT_INTERVAL_S below F5_WORKER_VISIBILITY_TIMEOUT_S, or unset it "
                f"(default: {DERIVED_DEFAULTS['heartbeat_interval_s'][0]})",
            )
        if self.retry_base_delay_s > self.retry_max_delay_s:
            raise self._conflict(
                ("retry_base_delay_s", "retry_max_delay_s"),
                "the first retry delay must not exceed the ceiling",
                "lower F5_WORKER_RETRY_BASE_DELAY_S to F5_WORKER_RETRY_MAX_DELAY_S or less, or unset it",
            )
        token = self.health_token.get_secret_value().strip() if self.health_token is not None else ""
        if not is_loopback(self.health_host) and not token:  # an empty token would leave /metrics open
            raise self._conflict(
                ("health_host",),
                "without F5_WORKER_HEALTH_TOKEN, a health port beyond this machine serves /metrics to anyone",
                "set F5_WORKER_HEALTH_TOKEN (Prometheus sends it as a bearer token), or keep "
                "F5_WORKER_HEALTH_HOST=127.0.0.1",
            )
        return self


# Worker defaults computed from another setting when not given: (what docs/settings.md shows, the formula).
DERIVED_DEFAULTS: dict[str, tuple[str, Callable[[WorkerSettings], Any]]] = {
    "heartbeat_interval_s": (
        "min(30, visibility_timeout_s / 4)",
        lambda s: min(30.0, s.visibility_timeout_s / 4),
    ),
    "retry_base_delay_s": ("min(5, retry_max_delay_s)", lambda s: min(5, s.retry_max_delay_s)),
}


class EngineSettings(SettingsBase):
    """The synthesis engine (`f5-worker run`, with `WorkerSettings`): model, device, batching, ASR. No AWS."""

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

    @model_validator(mode="after")
    def _engine_rules(self) -> EngineSettings:
        if self.model_dir is not None and self.checkpoint is not None:
            raise self._conflict(
                ("model_dir", "checkpoint"), "give one model, not two", "unset one of the two variables"
            )
        extra = "vocab" if self.vocab is not None else "architecture"
        if self.model_dir is not None and extra in self.model_fields_set:
            raise self._conflict(
                ("model_dir", extra),
                f"{extra} goes with a checkpoint; a model directory's model.json names its own",
                f"unset F5_WORKER_{extra.upper()}",
            )
        return self


class ApiSettings(LogSettings, VoiceCacheSettings, AwsSettings):
    """`f5-worker api`: the HTTP API."""

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
    api_stream: bool = Field(
        True,
        description="`POST /v1/audio/speech` sends the audio as the worker makes it (OpenAI's behaviour: the "
        "first block after a short first chunk); false: when the job is done. A request's `stream` field decides "
        "for itself. Costs a PUT and a GET per block.",
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
        "requests wake when their event arrives. Without it, each waiting job's record is read at doubling gaps "
        "(250 ms to 5 s).",
    )
    api_jobs_prefix: str = Field(
        "api-jobs", description="Key prefix of the API's job markers (owner key, body hash: idempotency)."
    )


class ProducerSettings(LogSettings, WebhookTargetSettings, AwsSettings):
    """The producer commands (`enqueue`, `say`, `jobs`, `voices`, `status`, `dlq`) and the Python client."""

    events_queue_url: str | None = Field(None, description="Producers: an SQS queue subscribed to the topic (`say`).")


class FleetSettings(LogSettings, AwsSettings):
    """`f5-worker scale`: the controller that sizes the fleet from the queue, and its simulator."""

    fleet_provider: Literal["local", "runpod"] = Field(
        "local", description="Where workers run: `local` processes on this host, or `runpod` pods."
    )
    fleet_name_prefix: str = Field(
        "f5-worker", description="Name prefix of the fleet's workers (pods): the fleet is these."
    )
    fleet_min_pods: int = Field(0, ge=0, description="Fewest workers (0: scale to zero).")
    fleet_max_pods: int = Field(4, ge=1, description="Most workers.")
    fleet_target_drain_s: float = Field(300.0, gt=0, description="The backlog should be gone within this.")
    fleet_fallback_rate: float = Field(
        0.1, gt=0, description="Jobs per worker per second until the fleet's rate is measured."
    )
    fleet_cooldown_s: float = Field(120.0, ge=0, description="After any change, before a scale-down.")
    fleet_empty_window_s: float = Field(300.0, ge=0, description="The queue stays empty this long before a scale-down.")
    fleet_max_changes_per_minute: int = Field(4, ge=1, description="Workers started or stopped within any 60 s.")
    fleet_price_per_pod_hour: float = Field(0.0, ge=0, description="Dollars per worker-hour (0: no cost cap).")
    fleet_max_dollars_per_hour: float | None = Field(None, ge=0, description="Cost cap of the whole fleet.")
    fleet_interval_s: float = Field(15.0, gt=0, description="Seconds between two decisions.")
    fleet_lease_key: str = Field("fleet/controller.json", description="S3 key of the one-controller lease.")
    fleet_lease_ttl_s: float = Field(60.0, gt=0, description="A controller silent this long is replaced.")
    fleet_local_command: str = Field(
        "f5-worker run", description="`local` provider: the worker command each slot runs (shell words)."
    )
    fleet_runpod_api_key: SecretStr | None = Field(None, description="`runpod` provider: the RunPod API key.")
    fleet_runpod_template: str = Field(
        "deploy/runpod/pod.json", description="`runpod` provider: the pod template file (image, env, GPU types)."
    )
    fleet_runpod_api_url: str | None = Field(None, description="`runpod` provider: another API endpoint (tests).")

    @model_validator(mode="after")
    def _fleet_rules(self) -> FleetSettings:
        if self.fleet_min_pods > self.fleet_max_pods:
            raise self._conflict(
                ("fleet_min_pods", "fleet_max_pods"),
                "the fleet's minimum cannot exceed its maximum",
                "lower F5_WORKER_FLEET_MIN_PODS to F5_WORKER_FLEET_MAX_PODS or less",
            )
        if self.fleet_lease_ttl_s <= self.fleet_interval_s:
            raise self._conflict(
                ("fleet_lease_ttl_s", "fleet_interval_s"),
                "the controller renews its lease once per decision, so the lease must outlast the interval",
                "raise F5_WORKER_FLEET_LEASE_TTL_S above F5_WORKER_FLEET_INTERVAL_S (3x is a good margin)",
            )
        return self


class Settings(EngineSettings, WorkerSettings, ApiSettings, ProducerSettings):
    """Every setting (`run`, `local` and `init` read them all). The bases' order sets the fields' order (AWS, the
    shared ones, producer, API, worker, engine: of several bad variables, the first is named) and the rules' order
    (the worker's, the engine's, then the one across both, below)."""

    @model_validator(mode="after")
    def _roles_fit(self) -> Settings:
        if isinstance(self.max_in_flight, int) and self.max_in_flight < self.batch_max_size:
            raise self._conflict(
                ("batch_max_size", "max_in_flight"),
                "a batch needs at least as many messages in flight",
                f"raise F5_WORKER_MAX_IN_FLIGHT to {self.batch_max_size} or more (or auto), or lower "
                "F5_WORKER_BATCH_MAX_SIZE",
            )
        return self


ROLES: tuple[type[SettingsBase], ...] = (WorkerSettings, EngineSettings, ApiSettings, ProducerSettings)


# Every setting of every role, by name: `Settings` (what `run`, `local` and `init` read) and `scale`'s own.
ALL_FIELDS = Settings.model_fields | FleetSettings.model_fields


def is_list_field(name: str) -> bool:
    return get_origin(ALL_FIELDS[name].annotation) is tuple


# --- loading: a mistake is one line naming the variable, what it takes, and a fix ----------------------------------
RoleT = TypeVar("RoleT", bound=SettingsBase)


def load_settings(**overrides: Any) -> Settings:
    """All settings from the environment, `overrides` (command-line flags) first; a bad one is a
    ConfigurationError."""
    return load_role(Settings, **overrides)


def load_role(role: type[RoleT], **overrides: Any) -> RoleT:
    """One role's settings (e.g. `ApiSettings`) from the environment, `overrides` first; a bad one is a
    ConfigurationError naming its variable."""
    try:
        return role(**overrides)
    except ValidationError as exc:  # its text holds every input, secrets included: never shown
        from consumer.core.settings_errors import settings_error  # it reads the fields above: imported late

        raise settings_error(exc, overrides) from None
