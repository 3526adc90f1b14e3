"""Optional speech recognition of reference clips that come without a transcript (Whisper family, through
`transformers.pipeline("automatic-speech-recognition")`, called as f5-tts's `utils_infer.transcribe` does).

Torch-free at import: torch and transformers are imported in `WhisperTranscriber.load`, so the voice resolver and
the producer CLI can import the `Transcriber` protocol without them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from consumer.audio.signal import resample
from consumer.core.errors import BadReferenceAudio, EngineError
from consumer.core.logs import get_logger
from consumer.core.settings import Settings
from consumer.engine import default_dtype_name

log = get_logger(__name__)

SETTING = "F5_WORKER_ASR_MODEL"


class Transcriber(Protocol):
    """What the voice resolver and the voice library need from a speech recogniser."""

    model_id: str

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        """The words spoken in mono float32 `samples`. Raises `BadReferenceAudio` when none are recognised."""


def recognised_text(text: str) -> str:
    """Whitespace collapsed; blank output means the recogniser heard no speech."""
    words = " ".join(text.split())
    if not words:
        raise BadReferenceAudio(
            "no speech was recognised in the reference audio: supply a clip of clear speech, or give its transcript"
        )
    return words


class WhisperTranscriber:
    """A Hugging Face Whisper model loaded once (`load`); calls are serialised by one lock."""

    def __init__(
        self, model: str, *, device: str | None = None, dtype: str | None = None, language: str | None = None
    ) -> None:
        self.model_id = model
        self.device = device
        self.dtype = dtype
        self.language = language
        self.sample_rate = 16_000  # replaced by the feature extractor's rate at load
        self._lock = threading.Lock()
        self._pipe: Any = None
        self._generate_kwargs: dict[str, str] = {}

    def load(self) -> None:
        with self._lock:
            if self._pipe is not None:
                return
            import torch
            from transformers import pipeline

            local = Path(self.model_id).expanduser()
            if self.model_id.startswith((".", "/", "~")) and not local.is_dir():
                raise EngineError(f"ASR model directory {local} does not exist (set {SETTING} to a Whisper model)")
            self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            cuda = self.device.startswith("cuda")
            major = torch.cuda.get_device_properties(torch.device(self.device)).major if cuda else 0
            dtype = getattr(torch, self.dtype or default_dtype_name(self.device, major))
            t0 = time.monotonic()
            try:
                pipe = pipeline(
                    "automatic-speech-recognition",
                    model=str(local) if local.is_dir() else self.model_id,
                    dtype=dtype,
                    device=self.device,
                )
            except Exception as exc:  # hub, file and config errors vary: report them with the setting to fix
                raise EngineError(
                    f"loading the ASR model {self.model_id!r} failed ({type(exc).__name__}: {exc}). Set {SETTING} to "
                    "a local directory of a Whisper model (save_pretrained layout), or to a hub id where the hub "
                    "is reachable"
                ) from exc
            if getattr(pipe, "type", None) != "seq2seq_whisper":
                raise EngineError(f"{self.model_id!r} is not a Whisper model ({SETTING})")
            self._generate_kwargs = _generate_kwargs(pipe.model.generation_config, self.language)
            if pipe.feature_extractor is None:
                raise EngineError(f"{self.model_id!r} has no feature extractor ({SETTING})")
            self.sample_rate = int(pipe.feature_extractor.sampling_rate)
            self._pipe = pipe
            log.info(
                "asr_loaded",
                model=self.model_id,
                device=self.device,
                dtype=str(dtype).removeprefix("torch."),
                language=self.language,
                seconds=round(time.monotonic() - t0, 3),
            )

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        if self._pipe is None:
            raise EngineError("the ASR model is not loaded (call load() first)")
        audio = resample(np.asarray(samples, dtype=np.float32), sample_rate, self.sample_rate)
        with self._lock:
            try:
                out = self._pipe(
                    {"raw": audio, "sampling_rate": self.sample_rate},
                    generate_kwargs=dict(self._generate_kwargs),
                    return_timestamps=False,
                )
            except RuntimeError as exc:  # CUDA OOM and device hiccups pass; retry the job
                raise EngineError(f"speech recognition failed: {exc}") from exc
        return recognised_text(str(out["text"]))


def _generate_kwargs(config: Any, language: str | None) -> dict[str, str]:
    """upstream's `{"task": "transcribe", "language": ...}` for multilingual Whisper models; nothing for English-only
    ones (they refuse both). An unknown language fails here, at start, not in the first job."""
    if not getattr(config, "is_multilingual", False) or not hasattr(config, "task_to_id"):
        if language:
            raise EngineError(f"the ASR model is English-only: unset F5_WORKER_ASR_LANGUAGE ({language!r})")
        return {}
    if not language:
        return {"task": "transcribe"}  # the language is detected per clip
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    code = TO_LANGUAGE_CODE.get(language.lower(), language.lower().strip("<|>"))
    if f"<|{code}|>" not in getattr(config, "lang_to_id", {}):
        raise EngineError(f"F5_WORKER_ASR_LANGUAGE={language!r} is not a language of this ASR model (e.g. en, english)")
    return {"task": "transcribe", "language": code}


def build_transcriber(settings: Settings) -> WhisperTranscriber | None:
    """The configured recogniser, loaded; None when `asr_model` is unset (transcripts are then required)."""
    if not settings.asr_model:
        return None
    transcriber = WhisperTranscriber(
        settings.asr_model, device=settings.device, dtype=settings.dtype, language=settings.asr_language
    )
    transcriber.load()
    return transcriber
