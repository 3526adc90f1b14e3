"""A deterministic stand-in engine for tests of the consumer (no torch): a tone whose pitch and length
follow the text and seed. Counts calls so tests can prove a job was (not) synthesized twice."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator

import numpy as np

from consumer.core.errors import SynthesisAborted, TextNotRepresentable
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.engine.first_chunk import first_chunk_cut


class FakeEngine:
    model_id = "fake-tone"
    device = "cpu"
    sample_rate = 24_000

    def __init__(self, seconds_per_char: float = 0.06, work_s: float = 0.0, chunk_s: float = 0.0) -> None:
        self.seconds_per_char = seconds_per_char
        self.work_s = work_s  # wall time each synthesis takes (to exercise heartbeats and shutdown)
        self.chunk_s = chunk_s  # wall time of each chunk (sentence), whole or streamed, besides `work_s`
        self.calls = 0
        self.texts: list[str] = []  # what each call was asked to speak
        self.loaded = False
        self._lock = threading.Lock()

    def load(self) -> None:
        self.loaded = True

    def warm_up(self) -> None:
        pass

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        if "\x00" in job.text:
            raise TextNotRepresentable("text contains NUL characters")
        with self._lock:
            self.calls += 1
            self.texts.append(job.text)
        # Sentences stand in for chunks: progress is reported per sentence, the work spread evenly over them.
        chunks = max(1, sum(job.text.count(mark) for mark in ".!?"))
        started = time.monotonic()
        for i in range(chunks):
            job.on_progress(i, chunks)
            self._work(started + (self.work_s / chunks + self.chunk_s) * (i + 1), job)
        if job.should_abort():
            raise SynthesisAborted("aborted")
        job.on_progress(chunks, chunks)
        return SynthesizedAudio(samples=self._tone(job), sample_rate=self.sample_rate, seed=job.seed)

    def synthesize_stream(self, job: SynthesisJob) -> Iterator[np.ndarray]:
        """The same tone, one block per sentence (a streamed job's first one cut short as the F5 planner cuts
        it), each yielded `chunk_s` after the last (plus `work_s` spread over them) as a real engine yields its
        chunks: concatenated, `synthesize`'s samples."""
        if "\x00" in job.text:
            raise TextNotRepresentable("text contains NUL characters")
        with self._lock:
            self.calls += 1
            self.texts.append(job.text)
        samples = self._tone(job)
        pieces = _pieces(job)
        chunks = len(pieces)
        per_chunk = self.chunk_s + self.work_s / chunks
        bounds = np.cumsum([len(p) for p in pieces])[:-1] * len(samples) // max(1, sum(len(p) for p in pieces))
        for i, block in enumerate(np.split(samples, bounds)):
            job.on_progress(i, chunks)
            self._work(time.monotonic() + per_chunk, job)
            yield block
        job.on_progress(chunks, chunks)

    def _work(self, until: float, job: SynthesisJob) -> None:
        while time.monotonic() < until:
            if job.should_abort():
                raise SynthesisAborted("aborted")
            time.sleep(min(0.02, max(0.0, until - time.monotonic())))
        if job.should_abort():
            raise SynthesisAborted("aborted")

    def _tone(self, job: SynthesisJob) -> np.ndarray:
        digest = hashlib.sha256(f"{job.text}|{job.seed}".encode()).digest()
        freq = 120 + digest[0]
        duration = max(0.3, len(job.text) * self.seconds_per_char / job.options.speed)
        t = np.arange(int(duration * self.sample_rate), dtype=np.float32) / self.sample_rate
        return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)

    def close(self) -> None:
        self.loaded = False


def _pieces(job: SynthesisJob) -> list[str]:
    """The fake's chunks: sentences, the first one cut short for a streamed job."""
    text = " ".join(job.text.split())
    first, rest = first_chunk_cut(text) if job.stream else ("", text)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", rest) if s]
    return [p for p in (first, *sentences) if p] or [text]
