"""`SynthesisRequest`: the JSON body of one SQS message.

Compatibility rule: schema `v1` only grows by optional fields, each with a default that keeps today's behaviour.
Workers reject fields they do not know (`extra="forbid"`: a typo such as `voise` fails loudly instead of being
dropped), so workers are upgraded before producers start sending a new field.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts import limits

SCHEMA_VERSION = 1

JobId = Annotated[str, StringConstraints(pattern=limits.JOB_ID_PATTERN)]
VoiceId = Annotated[str, StringConstraints(pattern=limits.VOICE_ID_PATTERN)]
S3Uri = Annotated[str, StringConstraints(pattern=limits.S3_URI_PATTERN)]
KeyPrefix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!_.*'()/-]{0,256}$")]


class AudioFormat(StrEnum):
    """Output container/codec. `pcm` is raw little-endian 16-bit mono without a header; `aac` is AAC-LC in ADTS
    frames (`.aac`)."""

    WAV = "wav"
    FLAC = "flac"
    MP3 = "mp3"
    OPUS = "opus"
    PCM = "pcm"
    AAC = "aac"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class VoiceRef(_Strict):
    """The reference voice: a library voice id, or a clip in S3 with its transcript (optional if the worker has ASR)."""

    voice_id: VoiceId | None = Field(None, description="Voice in the library (voices/{voice_id}/ in the bucket).")
    audio_uri: S3Uri | None = Field(None, description="s3://bucket/key of a reference clip (wav/flac/mp3/ogg).")
    transcript: Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_TRANSCRIPT_CHARS)] | None = Field(
        None,
        description="Exact transcript of the audio_uri clip. Omit only when the worker has an ASR model configured "
        "(F5_WORKER_ASR_MODEL); otherwise the job fails with invalid_request.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> VoiceRef:
        if (self.voice_id is None) == (self.audio_uri is None):
            raise ValueError("give exactly one of voice_id or audio_uri")
        return self


class OutputSpec(_Strict):
    """Where and how the audio is written. The worker may restrict buckets/prefixes to an allowlist."""

    format: AudioFormat = AudioFormat.WAV
    sample_rate: Literal[8000, 16000, 22050, 24000, 44100, 48000] = 24000
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None = Field(
        None, description="Output bucket; defaults to the worker's bucket."
    )
    key_prefix: KeyPrefix | None = Field(None, description="Prefix under which {job_id}.{ext} is written.")
    target_lufs: float | None = Field(None, ge=-70, le=-5, description="Integrated loudness target (LUFS).")
    stream: bool = Field(
        False,
        description="Write the audio in blocks while the job runs (streams/ in the worker's bucket), the first "
        "one after a short first chunk, so readers hear it before the job ends (`Client.stream`, the HTTP API). "
        "The final object and the completion event are as without it. Not with target_lufs (a loudness target "
        "needs the whole audio) nor flac.",
    )

    @model_validator(mode="after")
    def _streamable(self) -> OutputSpec:
        if self.stream and self.target_lufs is not None:
            raise ValueError("stream and target_lufs do not go together: a loudness target needs the whole audio")
        if self.stream and self.format is AudioFormat.FLAC:
            raise ValueError("stream is not offered for flac; use wav, pcm, mp3, opus or aac")
        return self

    @field_validator("key_prefix")
    @classmethod
    def _safe_prefix(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = v.strip("/").split("/")
        if v.startswith("/") or any(p in {".", ".."} for p in parts) or "//" in v:
            raise ValueError("key_prefix must be relative, without '.', '..' or empty segments")
        return v.strip("/")


class SynthesisOptions(_Strict):
    """F5-TTS sampling options; defaults are upstream's."""

    speed: float = Field(1.0, ge=0.3, le=3.0)
    nfe_steps: int = Field(32, ge=1, le=limits.MAX_NFE_STEPS)
    cfg_strength: float = Field(2.0, ge=0.0, le=10.0)
    sway_sampling_coef: float = Field(-1.0, ge=-2.0, le=2.0)
    epss: bool = Field(
        True,
        description="Empirically Pruned Step Sampling: upstream's non-uniform timestep schedule, used when "
        "nfe_steps is 5, 6, 7, 10, 12 or 16 (other step counts are uniform either way); false: uniform steps.",
    )
    seed: int | None = Field(None, ge=0, lt=2**31, description="Fixed seed; the worker picks one otherwise.")
    remove_silence: bool = False
    normalize_text: bool = Field(
        True,
        description="Spell out numbers, dates, times, units, amounts and abbreviations before synthesis, in "
        "English text only: text whose `language` is English, or, without a `language`, text the worker's rule "
        "calls English (other languages are never rewritten).",
    )


class NotifySpec(_Strict):
    """Per-request notification targets, in addition to the worker's SNS topic."""

    webhook_url: AnyHttpUrl | None = Field(None, description="Receives the event, signed per Standard Webhooks.")

    @field_validator("webhook_url")
    @classmethod
    def _bounded(cls, v: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if v is not None and len(str(v)) > limits.MAX_WEBHOOK_URL_CHARS:
            raise ValueError(f"webhook_url longer than {limits.MAX_WEBHOOK_URL_CHARS} characters")
        return v


class SynthesisRequest(_Strict):
    """One text-to-speech job. `job_id` is chosen by the producer and makes the job idempotent."""

    @field_validator("job_id")
    @classmethod
    def _no_dot_segments(cls, v: str) -> str:
        if ".." in v:
            raise ValueError("job_id must not contain '..'")
        return v

    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    job_id: JobId
    text: Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_TEXT_CHARS)] | None = Field(
        None, description=f"The text to speak (at most {limits.MAX_TEXT_CHARS:,} characters; longer: `text_uri`)."
    )
    text_uri: S3Uri | None = Field(
        None,
        description=f"s3://bucket/key of a UTF-8 text file of at most {limits.MAX_TEXT_URI_CHARS:,} characters (a "
        "chapter), in the worker's bucket or one it may read references from. Exactly one of text and text_uri.",
    )
    language: Annotated[str, StringConstraints(pattern=limits.LANGUAGE_TAG_PATTERN)] | None = Field(
        None,
        description="BCP-47 tag of the text, e.g. `en`, `fr-CA`. Decides whether English normalisation applies "
        "(only to `en`); without it the worker applies it only to text it can tell is English.",
    )
    voice: VoiceRef
    output: OutputSpec = OutputSpec()
    options: SynthesisOptions = SynthesisOptions()
    notify: NotifySpec = NotifySpec()
    metadata: dict[str, Any] = Field(default_factory=dict, description="Echoed back in every event.")

    @model_validator(mode="after")
    def _one_text(self) -> SynthesisRequest:
        if (self.text is None) == (self.text_uri is None):
            raise ValueError("give exactly one of text or text_uri")
        return self

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > limits.MAX_METADATA_KEYS:
            raise ValueError(f"metadata has {len(v)} keys; at most {limits.MAX_METADATA_KEYS}")
        size = len(json.dumps(v, separators=(",", ":")).encode())
        if size > limits.MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON; at most {limits.MAX_METADATA_BYTES}")
        return v


def parse_request(body: str | bytes) -> SynthesisRequest:
    """Parse a message body. Raises `pydantic.ValidationError` (bad JSON included) with readable errors."""
    return SynthesisRequest.model_validate_json(body)


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """One readable line per problem, e.g. `text: String should have at most 5000 characters`."""
    lines = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        lines.append(f"{where}: {err['msg']}")
    more = exc.error_count() - limit
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)
