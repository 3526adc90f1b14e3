"""The synthesize step of a job: voice → text → engine → encoded audio. It writes nothing; the lifecycle
uploads the result while it still owns the job."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from consumer.audio.encoding import EncodedAudio, encode
from consumer.audio.text import normalize_english
from consumer.core.errors import EngineError, SynthesisAborted, WorkerError
from consumer.engine import Engine, SynthesisJob
from consumer.worker.voices import VoiceResolver
from contracts.requests import SynthesisRequest


@dataclass(frozen=True)
class Synthesized:
    encoded: EncodedAudio
    seed: int
    synthesis_s: float  # engine time only (voice resolution and encoding excluded)


def seed_for(job_id: str) -> int:
    """A job without a seed gets one derived from its id, so every attempt produces the same audio."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def synthesize(
    request: SynthesisRequest, voices: VoiceResolver, engine: Engine, should_abort: Callable[[], bool]
) -> Synthesized:
    """Raises the voice resolver's errors, `SynthesisAborted`, the engine's `WorkerError`s, and `EngineError`
    (with its cause) for anything else the engine raises."""
    reference = voices.resolve(request.voice)
    seed = request.options.seed if request.options.seed is not None else seed_for(request.job_id)
    text = normalize_english(request.text) if request.options.normalize_text else request.text
    job = SynthesisJob(text, reference, request.options, seed, should_abort=should_abort)
    t0 = time.monotonic()
    try:
        audio = engine.synthesize(job)
    except (WorkerError, SynthesisAborted):
        raise
    except Exception as exc:
        raise EngineError(f"engine failed: {type(exc).__name__}: {exc}") from exc
    synthesis_s = time.monotonic() - t0
    encoded = encode(
        audio.samples,
        audio.sample_rate,
        request.output.format,
        out_sample_rate=request.output.sample_rate,
        target_lufs=request.output.target_lufs,
    )
    return Synthesized(encoded, seed, synthesis_s)
