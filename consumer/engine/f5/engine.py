"""`F5Engine`: the F5-TTS engine's face (`consumer.engine.Engine`): lifecycle, the engine lock, and the
three ways in (one job, several jobs, one job streamed), all through one `GroupRunner`."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from consumer.audio.signal import CrossFader
from consumer.core.errors import EngineError
from consumer.core.logs import get_logger
from consumer.engine import Reference, SynthesisJob, SynthesizedAudio
from consumer.engine.f5.chunking import normalized_text, split_into_chunks
from consumer.engine.f5.device import default_device, default_dtype, resolve_attention_backend
from consumer.engine.f5.items import make_item
from consumer.engine.f5.loading import load_model
from consumer.engine.f5.memory import ItemCap
from consumer.engine.f5.planning import plan_items, plan_job
from consumer.engine.f5.prompts import Prompt, PromptCache
from consumer.engine.f5.rendering import CROSS_FADE_S, Rendering, clipped, finish_block, join_chunks
from consumer.engine.f5.runner import Failures, GroupRunner
from consumer.engine.f5.sampling import Sampler
from consumer.engine.model_spec import EXAMPLE_VOICE_EN, ModelSpec
from contracts.requests import SynthesisOptions

log = get_logger(__name__)

WARM_UP_TEXT = "Warming up."
CUDA_BATCH_ITEMS = 32  # items per CFM.sample call on CUDA (lowered for a while after an out-of-memory)
CPU_CONCURRENT_CALLS = 2  # CFM.sample calls at once on CPU (measured: see consumer.engine.f5.runner)
OOM_COOL_DOWN_CALLS = 16  # successful calls at a lowered cap before it doubles back


class F5Engine:
    """`consumer.engine.Engine` on f5-tts. Thread-safe: calls are serialised by one lock."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str | None = None,
        dtype: str | None = None,
        *,
        reference_cache_size: int = 32,
        hub_cache_dir: str | None = None,
        attention_backend: str = "auto",
        max_batch_items: int | None = None,
        concurrent_calls: int | None = None,
        oom_cool_down_calls: int = OOM_COOL_DOWN_CALLS,
    ) -> None:
        """`max_batch_items` (items per `CFM.sample` call) and `concurrent_calls` (calls at once) default to
        what measured fastest for the device: 32 and 1 on CUDA, 1 and 2 on CPU (`consumer.engine.f5.runner`)."""
        self.spec = spec
        self.model_id = spec.model_id
        self.sample_rate = spec.sample_rate
        self.device = device or default_device()
        self.dtype: torch.dtype = getattr(torch, dtype) if dtype else default_dtype(self.device)
        self.attention_backend = resolve_attention_backend(attention_backend, self.device, self.dtype)
        self.checkpoint_sha256: str | None = None
        self._hub_cache_dir = hub_cache_dir
        self._lock = threading.Lock()
        self._model: Any = None
        self._vocoder: Any = None
        self._vocab: dict[str, int] = {}
        self._prompts = PromptCache(reference_cache_size)
        cuda = self.device.startswith("cuda")
        self.max_batch_items = max_batch_items or (CUDA_BATCH_ITEMS if cuda else 1)
        self.concurrent_calls = concurrent_calls or (1 if cuda else CPU_CONCURRENT_CALLS)
        if self.max_batch_items < 1 or self.concurrent_calls < 1 or oom_cool_down_calls < 1:
            raise ValueError("max_batch_items, concurrent_calls and oom_cool_down_calls must be >= 1")
        self._cap = ItemCap(self.max_batch_items, oom_cool_down_calls)
        self._runner: GroupRunner | None = None
        self._rng_devices: list[int] = []

    # --- lifecycle -------------------------------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            loaded = load_model(self.spec, self.device, self.dtype, self.attention_backend, self._hub_cache_dir)
            self.checkpoint_sha256 = loaded.checkpoint_sha256
            self._model, self._vocoder, self._vocab = loaded.model, loaded.vocoder, loaded.vocab
            sampler = Sampler(self._model, self.device)
            self._runner = GroupRunner(
                self._model, self._vocoder, sampler, self._cap, self.device, self.concurrent_calls
            )
            if self.device.startswith("cuda"):
                self._rng_devices = list(range(torch.cuda.device_count()))
            log.info(
                "engine_loaded",
                model_id=self.model_id,
                device=self.device,
                dtype=str(self.dtype).removeprefix("torch."),
                attention_backend=self.attention_backend,
                max_batch_items=self.max_batch_items,
                concurrent_calls=self.concurrent_calls,
                checkpoint_sha256=self.checkpoint_sha256,
                parameters=sum(p.numel() for p in self._model.parameters()),
            )

    def warm_up(self) -> None:
        """One short synthesis (few ODE steps) so that lazy initialisation is not paid by a real job."""
        from consumer.audio.reference import decode_reference

        voice = EXAMPLE_VOICE_EN
        reference = decode_reference(voice.audio(), voice.transcript, sample_rate=self.sample_rate)
        job = SynthesisJob(WARM_UP_TEXT, reference, SynthesisOptions(nfe_steps=2), seed=0)
        self.synthesize(job)

    @property
    def batch_item_cap(self) -> int:
        """Items per `CFM.sample` call now: `max_batch_items`, lower for a while after an out-of-memory."""
        return self._cap.value

    def close(self) -> None:
        with self._lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
            self._model = self._vocoder = None
            self._prompts.clear()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def chunks(self, text: str, reference: Reference, speed: float = 1.0) -> list[str]:
        """The chunks `text` is spoken in with `reference` (`consumer.engine.f5.chunking.split_into_chunks`)."""
        return split_into_chunks(text, reference, speed)

    # --- synthesis --------------------------------------------------------------------------------------
    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        rendering = self.render(job)
        return SynthesizedAudio(samples=clipped(rendering.samples), sample_rate=self.sample_rate, seed=job.seed)

    def render(self, job: SynthesisJob) -> Rendering:
        """Synthesize and return the unclipped waveform with the generated mel (for tests and tools). The
        job's chunks run as batch items (`render_batch`)."""
        rendering = self.render_batch([job])[0]
        if isinstance(rendering, BaseException):
            raise rendering
        return rendering

    def synthesize_batch(self, jobs: Sequence[SynthesisJob]) -> list[SynthesizedAudio | BaseException]:
        """Several jobs through shared `CFM.sample` calls; one result or exception per job, in order."""
        out: list[SynthesizedAudio | BaseException] = []
        for job, rendering in zip(jobs, self.render_batch(jobs), strict=True):
            if isinstance(rendering, BaseException):
                out.append(rendering)
            else:
                out.append(SynthesizedAudio(clipped(rendering.samples), sample_rate=self.sample_rate, seed=job.seed))
        return out

    def render_batch(self, jobs: Sequence[SynthesisJob]) -> list[Rendering | BaseException]:
        """`render` for several jobs at once: every chunk of every job is one batch item. Each item gets its
        own cond mel and `lens`, text, `duration` and initial noise drawn right after
        `torch.manual_seed(chunk seed)`, as a call of that item alone draws it; attention masks the padding.
        A job whose `should_abort()` fires gets `SynthesisAborted` while the others go on; a job that cannot
        be prepared (invalid or unrepresentable text) gets its own exception. `on_progress` reports (0, n)
        first, the chunks done after each call, and (n, n) at the end."""
        failed: Failures = {}
        with self._lock:
            runner = self._loaded_runner()
            plans, items = plan_items(jobs, self._vocab, self._prompt, self.spec.hop_length, failed)
            try:
                with torch.random.fork_rng(devices=self._rng_devices):
                    outputs = runner.run_items(items, jobs, failed)
            finally:
                self._model.transformer.clear_cache()
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
        results: list[Rendering | BaseException] = []
        for j, job in enumerate(jobs):
            if j in failed:
                results.append(failed[j])
                continue
            plan = plans[j]
            waves, mels = zip(*(outputs[(j, i)] for i in range(len(plan.chunks))), strict=True)
            results.append(join_chunks(job, plan, list(waves), list(mels), self.sample_rate))
            job.on_progress(len(plan.chunks), len(plan.chunks))
        return results

    def synthesize_stream(self, job: SynthesisJob) -> Iterator[np.ndarray]:
        """Chunk by chunk, each yielded as soon as it is made (minus the cross-fade's held-back end), no mel kept.
        Each chunk is a call of one item through the same runner as `render_batch`. The engine lock is taken
        per chunk, so other jobs (and batches) run between the chunks of a long one."""
        text = normalized_text(job)
        with self._lock:
            self._loaded_runner()
            plan = plan_job(job, text, self._vocab)
            prompt = self._prompt(job.reference)
        fader = CrossFader(self.sample_rate, CROSS_FADE_S)
        for i, (chunk, seed) in enumerate(zip(plan.chunks, plan.seeds, strict=True)):
            job.on_progress(i, len(plan.chunks))
            item = make_item(0, i, prompt, job.reference.transcript, chunk, job.options, seed, self.spec.hop_length)
            failed: Failures = {}
            with self._lock, torch.random.fork_rng(devices=self._rng_devices):
                made = self._loaded_runner().run_group([item], [job], failed)
            if 0 in failed:
                raise failed[0]
            wave, _mel = made[(0, i)]
            yield finish_block(fader.push(wave), job, self.sample_rate)
        job.on_progress(len(plan.chunks), len(plan.chunks))
        yield finish_block(fader.finish(), job, self.sample_rate)

    # --- internals --------------------------------------------------------------------------------------
    def _loaded_runner(self) -> GroupRunner:
        """The runner of the loaded model (under the lock)."""
        if self._runner is None:
            raise EngineError("the engine is not loaded (call load() first)")
        return self._runner

    def _prompt(self, reference: Reference) -> Prompt:
        return self._prompts.get(reference, self._model, self.sample_rate, self.device)
