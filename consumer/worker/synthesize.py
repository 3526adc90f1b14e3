"""The synthesize step of a job: voice → text → engine → encoded audio. It writes nothing to S3; the lifecycle
uploads the result while it still owns the job.

Three paths with one result shape: a text up to `longform_above_chars` is synthesized and encoded in memory
(`encode`); a longer one streams from the engine chunk by chunk into a `LongformWriter` file (memory bounded by
a few chunks), encoded there and uploaded from disk. Either way the same job gives the same audio. A streamed
job (`output.stream`) goes chunk by chunk into a `StreamOut`, which writes each block to S3 as it comes and
keeps the file that becomes the final object; its first chunk is cut short (`SynthesisJob.stream`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consumer.audio.encoding import EncodedAudio, encode
from consumer.audio.language import is_english
from consumer.audio.longform import EncodedFile, LongformWriter
from consumer.audio.text import normalize_english
from consumer.core.errors import EngineError, SynthesisAborted, WorkerError
from consumer.engine import Engine, SynthesisJob
from consumer.worker.progress import Progress
from consumer.worker.stream_out import StreamOut
from consumer.worker.voices import VoiceResolver
from contracts.requests import SynthesisRequest


@dataclass(frozen=True)
class Synthesized:
    encoded: EncodedAudio | EncodedFile  # bytes in memory, or a file (long-form)
    seed: int
    synthesis_s: float  # engine time only (voice resolution and encoding excluded)
    voice_version: str = ""

    @property
    def data(self) -> bytes | Path:
        return self.encoded.path if isinstance(self.encoded, EncodedFile) else self.encoded.data


def seed_for(job_id: str) -> int:
    """A job without a seed gets one derived from its id, so every attempt produces the same audio."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


def spoken_text(request: SynthesisRequest, text: str) -> str:
    """The text as the engine gets it: English normalisation only for English (`consumer.audio.language`)."""
    if request.options.normalize_text and is_english(text, request.language):
        return normalize_english(text)
    return text


@contextmanager
def synthesize(
    request: SynthesisRequest,
    text: str,
    voices: VoiceResolver,
    engine: Engine,
    should_abort: Callable[[], bool],
    progress: Progress | None = None,
    *,
    longform_above_chars: int | None = None,
    scratch_dir: Path | None = None,
    device_span: Callable[[], AbstractContextManager[None]] = nullcontext,
    stream_out: Callable[[], StreamOut] | None = None,
) -> Iterator[Synthesized]:
    """A context: a long-form or streamed result's file lives until the block ends. `device_span` wraps every
    engine call (device time: metrics, admission). `stream_out` opens the block writer of a streamed job (its
    `output.stream`). Raises the voice resolver's errors, `SynthesisAborted`, the engine's `WorkerError`s, and
    `EngineError` (with its cause) for anything else."""
    reference = voices.resolve(request.voice)
    seed = request.options.seed if request.options.seed is not None else seed_for(request.job_id)
    on_progress = progress.update if progress is not None else (lambda i, n: None)
    streamed = request.output.stream and stream_out is not None
    job = SynthesisJob(
        spoken_text(request, text), reference, request.options, seed, should_abort, on_progress, stream=streamed
    )
    if progress is not None:
        progress.start(job.expected_audio_s)
    long = longform_above_chars is not None and len(text) > longform_above_chars
    t0 = time.monotonic()
    if streamed:
        assert stream_out is not None
        with stream_out() as sink:
            with _engine_errors():
                for block in _timed_blocks(engine.synthesize_stream(job), device_span):
                    sink.write(block)
            synthesis_s = time.monotonic() - t0
            yield Synthesized(sink.finish(), seed, synthesis_s, reference.version)
        return
    if not long:
        with device_span(), _engine_errors():
            audio = engine.synthesize(job)
        synthesis_s = time.monotonic() - t0
        out = request.output
        encoded = encode(
            audio.samples, audio.sample_rate, out.format, out_sample_rate=out.sample_rate, target_lufs=out.target_lufs
        )
        yield Synthesized(encoded, seed, synthesis_s, reference.version)
        return
    out = request.output
    with LongformWriter(
        scratch_dir, engine.sample_rate, out.format, out_sample_rate=out.sample_rate, target_lufs=out.target_lufs
    ) as writer:
        with _engine_errors():
            for block in _timed_blocks(engine.synthesize_stream(job), device_span):
                writer.write(block)
        synthesis_s = time.monotonic() - t0
        yield Synthesized(writer.finish(), seed, synthesis_s, reference.version)


def _timed_blocks(
    blocks: Iterator[np.ndarray], busy: Callable[[], AbstractContextManager[None]]
) -> Iterator[np.ndarray]:
    """The engine's blocks, its time making each counted as device time (writing them to disk is not)."""
    while True:
        with busy():
            block = next(blocks, None)
        if block is None:
            return
        yield block


@contextmanager
def _engine_errors() -> Iterator[None]:
    try:
        yield
    except (WorkerError, SynthesisAborted):
        raise
    except Exception as exc:
        raise EngineError(f"engine failed: {type(exc).__name__}: {exc}") from exc
