"""The F5-TTS engine: f5-tts's own loaders and `CFM.sample`, driven the way `infer_batch_process` drives
them, minus its file I/O, global RNG seeding and silent clipping.

Per job, for each text chunk (upstream's `chunk_text`, sized from the reference's speaking rate as
`infer_process` does), the steps are upstream's `_infer_basic` verbatim: the same prompt text, the same
duration estimate, the same `sample(...)` call and vocoder decode, so a single-chunk job equals
`torch.manual_seed(seed); infer_batch_process((audio, sr), ref_text, [text], model, vocoder, ...)` bit for
bit (tests/unit/engine/test_f5.py proves it). What differs, on purpose:

- the reference mel is computed once per `Reference.cache_key` and reused (bounded LRU);
- chunk i is seeded from (job seed, i) (`chunk_seed`), its noise drawn right after `torch.manual_seed` of
  that seed inside one `torch.random.fork_rng` per call, so multi-chunk output is reproducible and the
  process-wide RNG is never left seeded;
- text the vocabulary cannot represent is refused (`TextNotRepresentable`) instead of spoken as silence;
- a single sentence too long for one chunk is split at word boundaries instead of generated in one pass;
- `job.should_abort()` is checked before every ODE step (a forward-pre-hook on the DiT);
- CUDA out-of-memory lowers the batch size instead of failing jobs (below), and fails a job with
  `EngineError` (retryable) only when one chunk alone does not fit.

Chunks and jobs as batch items. `render` (one job) and `render_batch` (several, from
`consumer.engine.batching.BatchingEngine`) run every chunk of every job as one item. Items with the same
`sampler_key` are sorted by length and cut into `CFM.sample` calls of at most `batch_item_cap` items: padded
cond mels with per-item `lens`, `duration`, text and seeded noise, with the attention processors'
`attn_mask_enabled` turned on at load (upstream passes a mask only for batches of more than one, so a call of
one item is exactly the single path). Batched items equal their single runs within float32 reordering noise
(tests/unit/engine/test_f5_batch_equivalence.py). Up to `concurrent_calls` calls run at once on a thread
pool, as upstream
runs a job's chunks in threads; each call's noise is drawn under one process-wide lock (`_SeedSequence`),
so concurrency never mixes seeds. Defaults, measured with the tiny model on a 2-core CPU (a two-chunk job,
32 steps): one call of both chunks took 1.8x the time of two sequential calls (SDPA turns the expanded
padding mask into a float (batch, heads, n, n) tensor at every step; unmasked it would gain only 5%), two
concurrent single-item calls 0.75x. So on CPU: 1 item per call, 2 calls at once; on CUDA, where batching is
the point: up to 32 items per call, 1 call at a time.

Out-of-memory backpressure. A call of several items that raises `torch.cuda.OutOfMemoryError` empties the
CUDA cache and is retried in two halves (recursively, down to single items; a single item that still does
not fit fails its job: `chunk_out_of_memory`). The cap for later calls drops to the size of those halves (log
`batch_out_of_memory` with the new cap), and doubles back towards `max_batch_items` after every
`oom_cool_down_calls` successful calls in a row (log `batch_item_cap_raised`; any out-of-memory restarts the
count): a GPU near its limit runs smaller batches for a while instead of failing jobs in a loop.

Attention runs in upstream's processors with their `attn_backend`: flash-attn where it can run (CUDA,
float16/bfloat16, package installed; `resolve_attention_backend`), torch SDPA otherwise. With flash-attn a
batch takes upstream's varlen path (padding removed); with SDPA the mask is expanded to (batch, heads, n, n).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.util
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cachetools import LRUCache
from torch.nn.utils.rnn import pad_sequence

from consumer.audio.signal import CrossFader, cross_fade, remove_long_silences
from consumer.core.errors import EngineError, InvalidRequest, SynthesisAborted, TextNotRepresentable
from consumer.core.logs import get_logger, third_party_output
from consumer.engine import (
    Reference,
    SamplerKey,
    SynthesisJob,
    SynthesizedAudio,
    default_dtype_name,
    sampler_key,
)
from consumer.engine.model_spec import EXAMPLE_VOICE_EN, ModelSpec
from contracts.requests import SynthesisOptions

log = get_logger(__name__)

TARGET_RMS = 0.1  # upstream's target_rms
CROSS_FADE_S = 0.15  # upstream's cross_fade_duration
MAX_PROMPT_S = 22.0  # upstream sizes chunks so that reference + chunk stay within ~22 s
SHORT_TEXT_BYTES = 10  # upstream slows texts under 10 bytes to speed 0.3
WARM_UP_TEXT = "Warming up."
MAX_FRAMES = 65536  # CFM.sample's max_duration
CUDA_BATCH_ITEMS = 32  # items per CFM.sample call on CUDA (lowered for a while after an out-of-memory)
CPU_CONCURRENT_CALLS = 2  # CFM.sample calls at once on CPU (measured: see the module docstring)
OOM_COOL_DOWN_CALLS = 16  # successful calls at a lowered cap before it doubles back

_NOISE_LOCK = threading.Lock()  # torch's RNG is process-wide: one call draws its seeded noise at a time


@dataclass(frozen=True)
class _Prompt:
    """A reference prepared for `CFM.sample`, reusable across jobs."""

    mel: torch.Tensor  # (1, frames, n_mels) float32 on the engine's device
    rms: torch.Tensor  # RMS of the reference before it was raised to TARGET_RMS
    n_samples: int


@dataclass(frozen=True)
class _Item:
    """One chunk of one job in a batch."""

    job: int  # index of the job in the batch
    chunk: int  # index of the chunk in the job
    prompt: _Prompt
    transcript: str
    text: str
    options: SynthesisOptions
    seed: int
    final_text: list[str]  # tokenised reference transcript + chunk, as CFM.sample takes it
    duration: int  # frames asked for, reference included
    frames: int  # frames CFM.sample generates for it (duration, raised for long text, capped)
    ref_audio_len: int  # frames of the reference to cut from the output


_Outputs = dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]  # (job, chunk) -> (waveform, mel)


@dataclass(frozen=True)
class Rendering:
    """Everything a synthesis produced, before clipping to [-1, 1]."""

    samples: np.ndarray  # float32 waveform at the engine's rate
    mel: np.ndarray  # (n_mels, frames) generated mel, chunks concatenated (upstream's "combined_spectrogram")
    chunks: tuple[str, ...]
    chunk_seeds: tuple[int, ...]


def chunk_seed(seed: int, index: int) -> int:
    """Chunk 0 uses the job seed itself (so single-chunk jobs match upstream seeded with it); later chunks
    get independent, deterministic seeds."""
    if index == 0:
        return seed
    digest = hashlib.sha256(f"f5-worker/chunk/{seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    """`default_dtype_name` for this machine's device."""
    return getattr(torch, default_dtype_name(device, cuda_capability_major(device)))


def cuda_capability_major(device: str) -> int:
    """The compute capability's major version of a CUDA device (0 for any other device)."""
    return torch.cuda.get_device_properties(torch.device(device)).major if device.startswith("cuda") else 0


def resolve_attention_backend(requested: str, device: str, dtype: torch.dtype) -> str:
    """upstream's `attn_backend` for the DiT: "auto" picks flash-attn where its kernels run (CUDA, float16 or
    bfloat16, package installed), else torch's SDPA; an explicit "flash_attn" that cannot run is refused."""
    installed = importlib.util.find_spec("flash_attn") is not None
    runnable = device.startswith("cuda") and dtype in (torch.float16, torch.bfloat16)
    if requested == "auto":
        return "flash_attn" if installed and runnable else "torch"
    if requested == "flash_attn" and not installed:
        raise EngineError("attention_backend flash_attn: the flash-attn package is not installed (use auto or torch)")
    if requested == "flash_attn" and not runnable:
        raise EngineError(
            f"attention_backend flash_attn needs CUDA and float16/bfloat16 (device {device}, "
            f"dtype {str(dtype).removeprefix('torch.')}); use auto or torch"
        )
    if requested not in ("torch", "flash_attn"):
        raise EngineError(f"unknown attention_backend {requested!r} (auto, torch or flash_attn)")
    return requested


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
        what measured fastest for the device: 32 and 1 on CUDA, 1 and 2 on CPU (module docstring)."""
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
        self._prompts: LRUCache[tuple[str, int, int], _Prompt] = LRUCache(maxsize=reference_cache_size)
        cuda = self.device.startswith("cuda")
        self.max_batch_items = max_batch_items or (CUDA_BATCH_ITEMS if cuda else 1)
        self.concurrent_calls = concurrent_calls or (1 if cuda else CPU_CONCURRENT_CALLS)
        if self.max_batch_items < 1 or self.concurrent_calls < 1 or oom_cool_down_calls < 1:
            raise ValueError("max_batch_items, concurrent_calls and oom_cool_down_calls must be >= 1")
        self._cap = _ItemCap(self.max_batch_items, oom_cool_down_calls)
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()  # per calling thread: should_abort, the seeds whose noise is drawing
        self._rng_devices: list[int] = []

    # --- lifecycle -------------------------------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            with third_party_output("f5_tts"):  # importing it prints where it runs, and warns about ffmpeg
                from f5_tts.infer.utils_infer import load_model, load_vocoder
                from f5_tts.model import DiT
                from f5_tts.model.utils import get_tokenizer

            if self.spec.mel_spec_type != "vocos":
                raise EngineError(f"{self.model_id}: only the vocos vocoder is supported")
            checkpoint = self._local_checkpoint()
            vocoder_dir = self._local_vocoder()
            self.checkpoint_sha256 = _sha256(checkpoint)
            with third_party_output("f5_tts"):  # upstream prints (vocab, paths): into the log at debug level
                # Loaded in fp32 on the CPU, then cast and moved: the same values as upstream's
                # `model.to(dtype)` followed by `load_state_dict`, with the dtype under our control.
                model = load_model(
                    DiT,
                    {**self.spec.arch, "attn_backend": self.attention_backend},
                    checkpoint,
                    mel_spec_type=self.spec.mel_spec_type,
                    vocab_file=self.spec.vocab,
                    ode_method="euler",
                    use_ema=True,
                    device="cpu",
                )
                vocoder = load_vocoder(
                    self.spec.mel_spec_type, is_local=True, local_path=vocoder_dir, device=self.device
                )
                self._vocab = get_tokenizer(self.spec.vocab, "custom")[0]
            self._model = model.to(device=self.device, dtype=self.dtype).eval()
            self._vocoder = vocoder
            self._model.transformer.register_forward_pre_hook(self._before_ode_step)
            _enable_attention_masks(self._model)
            if self.device.startswith("cuda"):
                self._rng_devices = list(range(torch.cuda.device_count()))
            if self.concurrent_calls > 1:
                self._pool = ThreadPoolExecutor(self.concurrent_calls, thread_name_prefix="f5-call")
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
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
            self._model = self._vocoder = None
            self._prompts.clear()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # --- synthesis --------------------------------------------------------------------------------------
    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        rendering = self.render(job)
        samples = np.clip(rendering.samples, -1.0, 1.0).astype(np.float32, copy=False)
        return SynthesizedAudio(samples=samples, sample_rate=self.sample_rate, seed=job.seed)

    def render(self, job: SynthesisJob) -> Rendering:
        """Synthesize and return the unclipped waveform with the generated mel (for tests and tools). The
        job's chunks run as batch items (`render_batch`)."""
        rendering = self.render_batch([job])[0]
        if isinstance(rendering, BaseException):
            raise rendering
        return rendering

    def synthesize_stream(self, job: SynthesisJob) -> Iterator[np.ndarray]:
        """Chunk by chunk, each yielded as soon as it is made (minus the cross-fade's held-back end), no mel kept.
        The engine lock is taken per chunk, so other jobs (and batches) run between the chunks of a long one."""
        text = _check_texts(job)
        with self._lock:
            if self._model is None:
                raise EngineError("the engine is not loaded (call load() first)")
            chunks, seeds = self._plan(job, text)
            prompt = self._prompt(job.reference)
        fader = CrossFader(self.sample_rate, CROSS_FADE_S)
        for i, (chunk, seed) in enumerate(zip(chunks, seeds, strict=True)):
            if job.should_abort():
                raise SynthesisAborted("synthesis aborted between chunks")
            job.on_progress(i, len(chunks))
            with self._lock, torch.random.fork_rng(devices=self._rng_devices):
                self._local.should_abort = job.should_abort
                try:
                    wave, _mel = self._infer_chunk(prompt, job.reference.transcript, chunk, job.options, seed)
                except torch.cuda.OutOfMemoryError as exc:
                    self._free_after_oom()
                    raise EngineError(f"CUDA out of memory in chunk {i + 1} of {len(chunks)}") from exc
                finally:
                    self._local.should_abort = None
                    self._model.transformer.clear_cache()
            yield self._finish_block(fader.push(wave), job)
        job.on_progress(len(chunks), len(chunks))
        yield self._finish_block(fader.finish(), job)

    def _finish_block(self, samples: np.ndarray, job: SynthesisJob) -> np.ndarray:
        if job.options.remove_silence and len(samples):
            samples = remove_long_silences(samples, self.sample_rate)
        return np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False)

    # --- batched synthesis ------------------------------------------------------------------------------
    def synthesize_batch(self, jobs: Sequence[SynthesisJob]) -> list[SynthesizedAudio | BaseException]:
        """Several jobs through shared `CFM.sample` calls; one result or exception per job, in order."""
        out: list[SynthesizedAudio | BaseException] = []
        for job, rendering in zip(jobs, self.render_batch(jobs), strict=True):
            if isinstance(rendering, BaseException):
                out.append(rendering)
            else:
                samples = np.clip(rendering.samples, -1.0, 1.0).astype(np.float32, copy=False)
                out.append(SynthesizedAudio(samples=samples, sample_rate=self.sample_rate, seed=job.seed))
        return out

    def render_batch(self, jobs: Sequence[SynthesisJob]) -> list[Rendering | BaseException]:
        """`render` for several jobs at once: every chunk of every job is one batch item (module docstring).
        Each item gets its own cond mel and `lens`, text, `duration` and initial noise drawn right after
        `torch.manual_seed(chunk seed)`, as the single path draws it; attention masks the padding. A job
        whose `should_abort()` fires gets `SynthesisAborted` while the others go on (a `sample` call stops
        early only when all of its jobs aborted); a job that cannot be prepared (invalid or unrepresentable
        text) gets its own exception. `on_progress` reports (0, n) first, the chunks done after each call,
        and (n, n) at the end."""
        results: dict[int, Rendering | BaseException] = {}
        plans: dict[int, tuple[list[str], tuple[int, ...]]] = {}
        with self._lock:
            if self._model is None:
                raise EngineError("the engine is not loaded (call load() first)")
            items = self._plan_items(jobs, plans, results)
            try:
                with torch.random.fork_rng(devices=self._rng_devices):
                    outputs = self._run_items(items, jobs, results)
            finally:
                self._model.transformer.clear_cache()
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
        for j, (chunks, seeds) in plans.items():
            if j not in results:
                waves, mels = zip(*(outputs[(j, i)] for i in range(len(chunks))), strict=True)
                results[j] = self._finish(jobs[j], list(waves), list(mels), chunks, seeds)
                jobs[j].on_progress(len(chunks), len(chunks))
        return [results[j] for j in range(len(jobs))]

    def _plan_items(
        self,
        jobs: Sequence[SynthesisJob],
        plans: dict[int, tuple[list[str], tuple[int, ...]]],
        failed: dict[int, Rendering | BaseException],
    ) -> list[_Item]:
        """Every chunk of every job as an item (plans filled per job; a job that cannot be planned fails)."""
        items: list[_Item] = []
        for j, job in enumerate(jobs):
            try:
                plans[j] = self._plan(job, _check_texts(job))
                prompt = self._prompt(job.reference)
            except Exception as exc:  # noqa: BLE001 - handed to that job alone
                failed[j] = exc
                plans.pop(j, None)
                continue
            for i, (chunk, seed) in enumerate(zip(*plans[j], strict=True)):
                items.append(self._item(j, i, prompt, job.reference.transcript, chunk, job.options, seed))
            job.on_progress(0, len(plans[j][0]))
        return items

    def _run_items(
        self, items: list[_Item], jobs: Sequence[SynthesisJob], failed: dict[int, Rendering | BaseException]
    ) -> _Outputs:
        """Runs the calls of `_calls(items)`, up to `concurrent_calls` at once; (job, chunk) -> (wave, mel)."""
        outputs: _Outputs = {}
        chunks = Counter(it.job for it in items)
        done: Counter[int] = Counter()

        def finished(group: list[_Item], made: _Outputs) -> None:
            outputs.update(made)
            done.update(it.job for it in group)
            for j in dict.fromkeys(it.job for it in group):
                if j not in failed and done[j] < chunks[j]:
                    jobs[j].on_progress(done[j], chunks[j])

        if self._pool is None or len(items) < 2:
            for group in self._calls(items):
                finished(group, self._run_group(group, jobs, failed))
            return outputs
        running: dict[Future[_Outputs], list[_Item]] = {}
        try:
            for group in self._calls(items):
                while len(running) >= self.concurrent_calls:
                    for future in wait(running, return_when=FIRST_COMPLETED).done:
                        finished(running.pop(future), future.result())
                running[self._pool.submit(self._run_group, group, jobs, failed)] = group
            for future in list(running):
                finished(running.pop(future), future.result())
        finally:
            wait(running)  # nothing runs on the model once the lock is given back
        return outputs

    def _calls(self, items: list[_Item]) -> Iterator[list[_Item]]:
        """Items that can share one `CFM.sample` call (same `sampler_key`), by length so that padding stays
        small, at most `batch_item_cap` per call (read as each call is cut: a lowered cap applies at once)."""
        by_options: dict[SamplerKey, list[_Item]] = {}
        for it in items:
            by_options.setdefault(sampler_key(it.options), []).append(it)
        for same in by_options.values():
            same.sort(key=lambda it: it.frames)
            start = 0
            while start < len(same):
                size = self._cap.value
                yield same[start : start + size]
                start += size

    def _run_group(
        self, group: list[_Item], jobs: Sequence[SynthesisJob], failed: dict[int, Rendering | BaseException]
    ) -> _Outputs:
        """One `CFM.sample` call over `group`'s live items; per-job failures go to `failed` (shared by
        concurrent calls: `setdefault` keeps a job's first failure). On CUDA out-of-memory the cap is lowered
        and the items are retried in halves; a single item that still does not fit fails its job."""
        owners = list(dict.fromkeys(it.job for it in group))

        def poll_aborts() -> bool:
            """Marks jobs whose abort check fires; true when every job of this call has stopped."""
            for j in owners:
                if j not in failed and jobs[j].should_abort():
                    failed.setdefault(j, SynthesisAborted("synthesis aborted"))
            return all(j in failed for j in owners)

        if not group or poll_aborts():
            return {}
        live = [it for it in group if it.job not in failed]  # jobs aborted or failed by now are left out
        try:
            made = self._attempt(live, owners, failed, poll_aborts)
        except torch.cuda.OutOfMemoryError as exc:
            error = str(exc)
        else:
            if (raised := self._cap.succeeded()) is not None:
                log.info("batch_item_cap_raised", cap=raised)
            return made
        # Out of the except block, the failed call's frames (and the activations they hold) are gone.
        self._free_after_oom()
        cap = self._cap.lowered(len(live))
        if len(live) == 1:
            log.warning("chunk_out_of_memory", frames=live[0].frames, cap=cap, error=error)
            failed.setdefault(live[0].job, EngineError(f"CUDA out of memory in a chunk of {live[0].frames} frames"))
            return {}
        log.warning("batch_out_of_memory", items=len(live), cap=cap, error=error)
        half = len(live) // 2
        return {**self._run_group(live[:half], jobs, failed), **self._run_group(live[half:], jobs, failed)}

    def _attempt(
        self,
        live: list[_Item],
        owners: list[int],
        failed: dict[int, Rendering | BaseException],
        poll_aborts: Callable[[], bool],
    ) -> _Outputs:
        """`_run_group`'s call itself; raises only `torch.cuda.OutOfMemoryError`."""
        made: _Outputs = {}
        self._local.should_abort = poll_aborts
        try:
            if len(live) == 1:  # exactly the single path
                it = live[0]
                made[(it.job, it.chunk)] = self._infer_chunk(it.prompt, it.transcript, it.text, it.options, it.seed)
                return made
            generated = self._sample_items(live)
            poll_aborts()
            for i, it in enumerate(live):
                if it.job not in failed:  # vocode each item's own frames, without the padding
                    mel = generated[i : i + 1, it.ref_audio_len : it.frames, :].permute(0, 2, 1)
                    made[(it.job, it.chunk)] = self._decode(it.prompt, mel)
        except torch.cuda.OutOfMemoryError:
            raise
        except SynthesisAborted:
            for j in owners:
                failed.setdefault(j, SynthesisAborted("synthesis aborted"))
        except Exception as exc:  # noqa: BLE001 - the call failed: each of its jobs gets the error
            for j in owners:
                failed.setdefault(j, exc)
        finally:
            self._local.should_abort = None
            self._model.transformer.clear_cache()  # a sample() that raised leaves this thread's text cache behind
        return made

    def _sample_items(self, group: list[_Item]) -> torch.Tensor:
        """One `CFM.sample` call for several items: (batch, max duration, n_mels) float32. The options are
        the first item's (callers batch only jobs with the same `sampler_key`); the caller forks the RNG."""
        options = group[0].options
        cond = pad_sequence([it.prompt.mel[0] for it in group], batch_first=True)
        lens = torch.tensor([it.prompt.mel.shape[1] for it in group], device=self.device, dtype=torch.long)
        duration = torch.tensor([it.duration for it in group], device=self.device, dtype=torch.long)
        with torch.inference_mode(), self._drawing([it.seed for it in group]) as seeds:
            generated, trajectory = self._model.sample(
                cond=cond,
                text=[it.final_text for it in group],
                duration=duration,
                lens=lens,
                steps=options.nfe_steps,
                cfg_strength=options.cfg_strength,
                sway_sampling_coef=options.sway_sampling_coef,
                use_epss=options.epss,
                seed=seeds,
            )
            del trajectory
        return generated.to(torch.float32)

    def _item(
        self,
        job: int,
        chunk: int,
        prompt: _Prompt,
        transcript: str,
        gen_text: str,
        options: SynthesisOptions,
        seed: int,
    ) -> _Item:
        final_text, duration, ref_audio_len = self._chunk_inputs(prompt, transcript, gen_text, options)
        # what CFM.sample makes of `duration`: at least the text or the prompt plus one frame, at most 65536
        frames = min(max(max(len(final_text), prompt.mel.shape[1]) + 1, duration), MAX_FRAMES)
        return _Item(
            job, chunk, prompt, transcript, gen_text, options, seed, final_text, duration, frames, ref_audio_len
        )

    def _finish(
        self,
        job: SynthesisJob,
        waves: list[np.ndarray],
        mels: list[np.ndarray],
        chunks: list[str],
        seeds: tuple[int, ...],
    ) -> Rendering:
        samples = cross_fade(waves, self.sample_rate, CROSS_FADE_S).astype(np.float32, copy=False)
        if job.options.remove_silence:
            samples = remove_long_silences(samples, self.sample_rate)
        return Rendering(samples, np.concatenate(mels, axis=1), tuple(chunks), seeds)

    def chunks(self, text: str, reference: Reference, speed: float = 1.0) -> list[str]:
        """upstream's `infer_process` chunking: as many bytes per chunk as the reference speaks in the time
        left of ~22 s. A single sentence over twice that (upstream would generate it in one, arbitrarily
        long, pass) is split at spaces, or between characters when it has none."""
        from f5_tts.infer.utils_infer import chunk_text

        ref_s = reference.duration_s
        max_chars = max(1, int(len(reference.transcript.encode("utf-8")) / ref_s * (MAX_PROMPT_S - ref_s) * speed))
        hard_limit = max(2 * max_chars, 200)
        out: list[str] = []
        for chunk in chunk_text(text, max_chars=max_chars):
            out.extend(_split_long(chunk, hard_limit) if len(chunk.encode("utf-8")) > hard_limit else [chunk])
        return out

    # --- internals --------------------------------------------------------------------------------------
    def _before_ode_step(self, _module: torch.nn.Module, _args: tuple[Any, ...]) -> None:
        """Forward-pre-hook on the DiT: `CFM.sample` calls it once per ODE step (cond+uncond packed), in the
        calling thread. By the first step the call's noise is drawn: the noise lock is given back."""
        seeds: _SeedSequence | None = getattr(self._local, "seeds", None)
        if seeds is not None:
            seeds.release()
        should_abort: Callable[[], bool] | None = getattr(self._local, "should_abort", None)
        if should_abort is not None and should_abort():
            raise SynthesisAborted("synthesis aborted between ODE steps")

    def _prompt(self, reference: Reference) -> _Prompt:
        key = (reference.cache_key, reference.sample_rate, len(reference.samples))
        if reference.cache_key and (cached := self._prompts.get(key)) is not None:
            return cached
        # upstream's infer_batch_process, step by step (mono, RMS, resample, device, mel).
        audio = torch.from_numpy(np.array(reference.samples, dtype=np.float32).reshape(1, -1))
        rms = torch.sqrt(torch.mean(torch.square(audio)))
        if rms < TARGET_RMS:
            audio = audio * TARGET_RMS / rms
        if reference.sample_rate != self.sample_rate:
            import torchaudio

            audio = torchaudio.transforms.Resample(reference.sample_rate, self.sample_rate)(audio)
        audio = audio.to(self.device)
        with torch.inference_mode():
            mel = self._model.mel_spec(audio).permute(0, 2, 1)  # what CFM.sample does with a waveform
        prompt = _Prompt(mel=mel, rms=rms, n_samples=audio.shape[-1])
        if reference.cache_key:
            self._prompts[key] = prompt
        return prompt

    def _plan(self, job: SynthesisJob, text: str) -> tuple[list[str], tuple[int, ...]]:
        """Vocabulary checks, chunks and chunk seeds (under the lock, model loaded)."""
        self._check_representable(job.reference.transcript, "the reference transcript")
        self._check_representable(text, "the text")
        chunks = self.chunks(text, job.reference, job.options.speed)
        if not chunks:
            raise InvalidRequest("the text to synthesize has nothing to speak")
        return chunks, tuple(chunk_seed(job.seed, i) for i in range(len(chunks)))

    def _chunk_inputs(
        self, prompt: _Prompt, transcript: str, gen_text: str, options: SynthesisOptions
    ) -> tuple[list[str], int, int]:
        """upstream's `_infer_basic` inputs for one chunk: tokenised prompt text, total duration in frames and
        the reference's length in frames."""
        from f5_tts.model.utils import convert_char_to_pinyin

        ref_text = transcript + " " if len(transcript[-1].encode("utf-8")) == 1 else transcript
        local_speed = 0.3 if len(gen_text.encode("utf-8")) < SHORT_TEXT_BYTES else options.speed
        final_text = convert_char_to_pinyin([ref_text + gen_text])[0]
        ref_audio_len = prompt.n_samples // self.spec.hop_length
        ref_text_len = len(ref_text.encode("utf-8"))
        gen_text_len = len(gen_text.encode("utf-8"))
        duration = ref_audio_len + int(ref_audio_len / ref_text_len * gen_text_len / local_speed)
        return final_text, duration, ref_audio_len

    def _infer_chunk(
        self, prompt: _Prompt, transcript: str, gen_text: str, options: SynthesisOptions, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """upstream's `_infer_basic` for one chunk (the caller forks the RNG)."""
        final_text, duration, ref_audio_len = self._chunk_inputs(prompt, transcript, gen_text, options)
        # upstream seeds right before sample(), whose first random draw is the noise: the same draw
        with torch.inference_mode(), self._drawing([seed]) as seeds:
            generated, trajectory = self._model.sample(
                cond=prompt.mel,
                text=[final_text],
                duration=duration,
                steps=options.nfe_steps,
                cfg_strength=options.cfg_strength,
                sway_sampling_coef=options.sway_sampling_coef,
                use_epss=options.epss,
                seed=seeds,
            )
            del trajectory
            generated = generated.to(torch.float32)[:, ref_audio_len:, :].permute(0, 2, 1)
            should_abort = getattr(self._local, "should_abort", None)
            if should_abort is not None and should_abort():
                raise SynthesisAborted("synthesis aborted before vocoding")
        return self._decode(prompt, generated)

    def _decode(self, prompt: _Prompt, generated: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Vocode one generated mel (1, n_mels, frames), restoring a quiet reference's loudness."""
        with torch.inference_mode():
            wave = self._vocoder.decode(generated)
            if prompt.rms < TARGET_RMS:
                wave = wave * prompt.rms / TARGET_RMS
            return wave.squeeze().cpu().numpy(), generated[0].cpu().numpy()

    @contextlib.contextmanager
    def _drawing(self, seeds: list[int]) -> Iterator[_SeedSequence]:
        """Per-item seeds for one `CFM.sample(seed=...)` call in this thread; checks that each was used."""
        sequence = _SeedSequence(seeds)
        self._local.seeds = sequence
        try:
            yield sequence
        finally:
            self._local.seeds = None
            sequence.release()
        sequence.check_consumed()

    def _free_after_oom(self) -> None:
        """What an out-of-memory left allocated goes back to the device before anything is retried."""
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _check_representable(self, text: str, what: str) -> None:
        from f5_tts.model.utils import convert_char_to_pinyin

        tokens = convert_char_to_pinyin([text])[0]
        unknown = list(dict.fromkeys(t for t in tokens if t not in self._vocab))
        if unknown:
            shown = ", ".join(_describe(t) for t in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            raise TextNotRepresentable(
                f"{what} contains characters the model's vocabulary cannot represent: {shown}{more}"
            )

    def _local_checkpoint(self) -> str:
        checkpoint = self.spec.checkpoint
        if not checkpoint.startswith("hf://"):
            return checkpoint
        try:
            from cached_path import cached_path

            return str(cached_path(checkpoint, cache_dir=self._hub_cache_dir))
        except Exception as exc:  # any hub/network failure means the same thing here
            raise EngineError(
                f"cannot fetch {checkpoint} from the model hub ({type(exc).__name__}: {exc}); without hub access "
                "bake the weights into the image and set F5_WORKER_MODEL_DIR or F5_WORKER_CHECKPOINT to a local path"
            ) from exc

    def _local_vocoder(self) -> str:
        vocoder = self.spec.vocoder
        if Path(vocoder).is_dir():
            return vocoder
        try:
            from huggingface_hub import hf_hub_download

            config = hf_hub_download(repo_id=vocoder, filename="config.yaml", cache_dir=self._hub_cache_dir)
            hf_hub_download(repo_id=vocoder, filename="pytorch_model.bin", cache_dir=self._hub_cache_dir)
        except Exception as exc:  # any hub/network failure means the same thing here
            raise EngineError(
                f"cannot fetch the vocoder {vocoder!r} from the model hub ({type(exc).__name__}: {exc}); without "
                "hub access set F5_WORKER_VOCODER to a local directory holding config.yaml and pytorch_model.bin"
            ) from exc
        return str(Path(config).parent)


def _enable_attention_masks(model: torch.nn.Module) -> None:
    """Make attention honour `CFM.sample`'s padding mask, which it passes only for batches of more than one
    item (so single runs, mask None, are unchanged). F5TTS_v1_Base ships `attn_mask_enabled: False`: without
    this, padded frames would leak into shorter items through attention."""
    from f5_tts.model.modules import AttnProcessor

    for module in model.modules():
        processor = getattr(module, "processor", None)
        if isinstance(processor, AttnProcessor):
            processor.attn_mask_enabled = True


def _check_texts(job: SynthesisJob) -> str:
    """The job's text with whitespace collapsed; blank text or transcript is invalid."""
    text = " ".join(job.text.split())
    if not text:
        raise InvalidRequest("the text to synthesize is empty")
    if not job.reference.transcript.strip():
        raise InvalidRequest("the reference transcript is empty")
    return text


class _ItemCap:
    """Items per `CFM.sample` call: `limit`, cut to the halves' size when a call runs out of memory, doubled
    back (up to `limit`) after `cool_down` successful calls without one. Thread-safe."""

    def __init__(self, limit: int, cool_down: int) -> None:
        self.limit = limit
        self.value = limit
        self._cool_down = cool_down
        self._successes = 0
        self._lock = threading.Lock()

    def lowered(self, items: int) -> int:
        """A call of `items` ran out of memory: the new cap, the size of its halves (an item that does not fit
        alone leaves the cap as it is). Either way the cool-down starts again."""
        with self._lock:
            if items > 1:
                self.value = min(self.value, (items + 1) // 2)
            self._successes = 0
            return self.value

    def succeeded(self) -> int | None:
        """A call went through: the raised cap when this ends a cool-down, else None."""
        with self._lock:
            if self.value >= self.limit:
                return None
            self._successes += 1
            if self._successes < self._cool_down:
                return None
            self.value = min(self.limit, 2 * self.value)
            self._successes = 0
            return self.value


class _SeedSequence:
    """Per-item seeds through `CFM.sample(seed=...)`: upstream calls `torch.manual_seed(seed)` (which does
    `int(seed)`) right before drawing each item's initial noise, in batch order, so each `int()` here yields
    the next item's seed and item i's noise is drawn exactly as the single path draws it. The first `int()`
    takes the process-wide noise lock, so that concurrent calls never seed between another call's seeding and
    its draw; the engine gives it back (`release`) at the first ODE step or when the call ends."""

    def __init__(self, seeds: list[int]) -> None:
        self._seeds = seeds
        self._used = 0
        self._holding = False

    def __int__(self) -> int:
        if self._used >= len(self._seeds):
            raise RuntimeError("CFM.sample drew more noise tensors than there are batch items")
        if not self._holding and self._used == 0:
            _NOISE_LOCK.acquire()
            self._holding = True
        self._used += 1
        return self._seeds[self._used - 1]

    def release(self) -> None:
        if self._holding:
            self._holding = False
            _NOISE_LOCK.release()

    def check_consumed(self) -> None:
        if self._used != len(self._seeds):
            raise RuntimeError(f"CFM.sample seeded {self._used} of {len(self._seeds)} items: upstream changed")


def _describe(token: str) -> str:
    if len(token) == 1:
        return f"{token!r} (U+{ord(token):04X})"
    return repr(token)


def _split_long(chunk: str, limit: int) -> list[str]:
    """Greedy split into pieces of at most `limit` UTF-8 bytes, at spaces where there are any."""
    pieces: list[str] = []
    current = ""
    units = chunk.split(" ") if " " in chunk else list(chunk)
    sep = " " if " " in chunk else ""
    for unit in units:
        candidate = f"{current}{sep}{unit}" if current else unit
        if len(candidate.encode("utf-8")) <= limit or not current:
            current = candidate
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
