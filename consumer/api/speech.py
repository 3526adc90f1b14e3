"""OpenAI's `POST /v1/audio/speech` body, mapped onto a `SynthesisRequest`.

Accepted `model` names: `f5-tts` and OpenAI's (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`), all meaning the model
the workers run. `voice` is a voice id of the library, as a string or `{"id": ...}`. `instructions` is accepted
and ignored (F5-TTS takes its style from the reference clip). `speed` must lie in F5's 0.3-3.0 (OpenAI allows
0.25-4.0). f5-worker's own options (`seed`, `nfe_steps`, `cfg_strength`, `sway_sampling_coef`, `remove_silence`,
`normalize_text`, `epss`, `language`, `sample_rate`, `target_lufs`, `stream`) come as extra body fields.

Streaming: the audio is sent as the worker makes it (`streamed`) unless the body says `"stream": false`, the API
is set not to (`F5_WORKER_API_STREAM=false`), or the request cannot stream (`flac`, `target_lufs`: both need the
whole audio); `stream_format: "sse"` sends OpenAI's `speech.audio.delta` events either way."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.limits import MAX_TEXT_CHARS

MODEL_NAMES = ("f5-tts", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPTION_FIELDS = ("seed", "nfe_steps", "cfg_strength", "sway_sampling_coef", "remove_silence", "normalize_text", "epss")
OUTPUT_FIELDS = ("sample_rate", "target_lufs")
UNSTREAMABLE_FORMATS = ("flac",)


class VoiceObject(BaseModel):
    id: str


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    input: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    voice: str | VoiceObject
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: str | None = None
    stream_format: Literal["audio", "sse"] = "audio"

    @property
    def voice_id(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceObject) else self.voice

    def problem(self) -> tuple[str, str] | None:
        """(param, message) for what this API does not do, else None."""
        if self.model not in MODEL_NAMES:
            return "model", f"model {self.model!r} is not served here; use one of {', '.join(MODEL_NAMES)}"
        stream = (self.model_extra or {}).get("stream")
        if stream is not None and not isinstance(stream, bool):
            return "stream", "stream must be true or false"
        if stream is True and not self._streamable:
            return "stream", "stream needs the audio before the job ends: not with flac or target_lufs"
        if not 0.3 <= self.speed <= 3.0:
            return "speed", "speed must be within 0.3-3.0 for F5-TTS"
        return None

    @property
    def _streamable(self) -> bool:
        extra = self.model_extra or {}
        return self.response_format not in UNSTREAMABLE_FORMATS and extra.get("target_lufs") is None

    def streamed(self, default: bool) -> bool:
        """Whether the worker streams this job: the body's `stream`, else `default` where the request can stream."""
        asked = (self.model_extra or {}).get("stream")
        return self._streamable and (asked if isinstance(asked, bool) else default)

    def synthesis_body(self, stream: bool = False) -> dict[str, Any]:
        """The `SynthesisRequest` fields (without job_id) this speech request asks for."""
        extra = self.model_extra or {}
        options = {"speed": self.speed} | {k: extra[k] for k in OPTION_FIELDS if k in extra}
        output = {"format": self.response_format} | {k: extra[k] for k in OUTPUT_FIELDS if k in extra}
        if stream:
            output["stream"] = True
        body: dict[str, Any] = {
            "text": self.input,
            "voice": {"voice_id": self.voice_id},
            "options": options,
            "output": output,
            "metadata": {"via": "openai-speech"},
        }
        if "language" in extra:
            body["language"] = extra["language"]
        return body
