"""Runs items (chunks of jobs) as `CFM.sample` calls: the one path of every synthesis, batched or streamed.

Calls are cut by `consumer.engine.f5.planning.cut_into_calls`; up to `concurrent_calls` of them run at once on
a thread pool, as upstream runs a job's chunks in threads (each call's noise is drawn under one process-wide
lock, so concurrency never mixes seeds). Defaults, measured with the tiny model on a 2-core CPU (a two-chunk
job, 32 steps): one call of both chunks took 1.8x the time of two sequential calls (SDPA turns the expanded
padding mask into a float (batch, heads, n, n) tensor at every step; unmasked it would gain only 5%), two
concurrent single-item calls 0.75x. So on CPU: 1 item per call, 2 calls at once; on CUDA, where batching is
the point: up to 32 items per call, 1 call at a time.

A job whose `should_abort()` fires gets `SynthesisAborted` while the others go on (a call stops early only when
all of its jobs aborted). A call of several items that runs out of CUDA memory is retried in halves and lowers
the item cap (`consumer.engine.f5.memory`, log `batch_out_of_memory`; its raising back logs
`batch_item_cap_raised`); a single item that still does not fit fails its job with `EngineError` (retryable;
log `chunk_out_of_memory`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import torch

from consumer.core.errors import EngineError, SynthesisAborted
from consumer.core.logs import get_logger
from consumer.engine import SynthesisJob
from consumer.engine.f5.items import Item, Outputs
from consumer.engine.f5.memory import ItemCap, free_after_oom
from consumer.engine.f5.planning import cut_into_calls
from consumer.engine.f5.rendering import vocode
from consumer.engine.f5.sampling import Sampler

log = get_logger(__name__)

Failures = dict[int, BaseException]  # job index -> its first failure, shared by concurrent calls


class GroupRunner:
    """Groups of items through `sampler`, vocoded; per-job failures collected, never raised (except what
    breaks the engine itself). Callers hold the engine's lock and fork the RNG."""

    def __init__(
        self, model: Any, vocoder: Any, sampler: Sampler, cap: ItemCap, device: str, concurrent_calls: int
    ) -> None:
        self._model = model
        self._vocoder = vocoder
        self.sampler = sampler
        self._cap = cap
        self._device = device
        self._concurrent_calls = concurrent_calls
        self._pool: ThreadPoolExecutor | None = None
        if concurrent_calls > 1:
            self._pool = ThreadPoolExecutor(concurrent_calls, thread_name_prefix="f5-call")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def run_items(self, items: list[Item], jobs: Sequence[SynthesisJob], failed: Failures) -> Outputs:
        """Every item, up to `concurrent_calls` calls at once; (job, chunk) -> (wave, mel). A job hears
        `on_progress(chunks done, chunks)` after each call that leaves some of its chunks to do."""
        outputs: Outputs = {}
        chunks = Counter(it.job for it in items)
        done: Counter[int] = Counter()

        def finished(group: list[Item], made: Outputs) -> None:
            outputs.update(made)
            done.update(it.job for it in group)
            for j in dict.fromkeys(it.job for it in group):
                if j not in failed and done[j] < chunks[j]:
                    jobs[j].on_progress(done[j], chunks[j])

        if self._pool is None or len(items) < 2:
            for group in cut_into_calls(items, self._cap):
                finished(group, self.run_group(group, jobs, failed))
            return outputs
        running: dict[Future[Outputs], list[Item]] = {}
        try:
            for group in cut_into_calls(items, self._cap):
                while len(running) >= self._concurrent_calls:
                    for future in wait(running, return_when=FIRST_COMPLETED).done:
                        finished(running.pop(future), future.result())
                running[self._pool.submit(self.run_group, group, jobs, failed)] = group
            for future in list(running):
                finished(running.pop(future), future.result())
        finally:
            wait(running)  # nothing runs on the model once the lock is given back
        return outputs

    def run_group(self, group: list[Item], jobs: Sequence[SynthesisJob], failed: Failures) -> Outputs:
        """One `CFM.sample` call over `group`'s live items; per-job failures go to `failed` (`setdefault`
        keeps a job's first failure). On CUDA out-of-memory the cap is lowered and the items are retried in
        halves; a single item that still does not fit fails its job."""
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
        free_after_oom(self._device)
        cap = self._cap.lowered(len(live))
        if len(live) == 1:
            log.warning("chunk_out_of_memory", frames=live[0].frames, cap=cap, error=error)
            failed.setdefault(live[0].job, EngineError(f"CUDA out of memory in a chunk of {live[0].frames} frames"))
            return {}
        log.warning("batch_out_of_memory", items=len(live), cap=cap, error=error)
        half = len(live) // 2
        return {**self.run_group(live[:half], jobs, failed), **self.run_group(live[half:], jobs, failed)}

    def _attempt(
        self, live: list[Item], owners: list[int], failed: Failures, poll_aborts: Callable[[], bool]
    ) -> Outputs:
        """`run_group`'s call itself; raises only `torch.cuda.OutOfMemoryError`."""
        made: Outputs = {}
        try:
            with self.sampler.watching(poll_aborts):
                generated = self.sampler.sample(live)
                poll_aborts()
            for i, it in enumerate(live):
                if it.job not in failed:  # vocode each item's own frames, without the padding
                    mel = generated[i : i + 1, it.ref_audio_len : it.frames, :].permute(0, 2, 1)
                    made[(it.job, it.chunk)] = vocode(self._vocoder, it.prompt, mel)
        except torch.cuda.OutOfMemoryError:
            raise
        except SynthesisAborted:
            for j in owners:
                failed.setdefault(j, SynthesisAborted("synthesis aborted"))
        except Exception as exc:  # noqa: BLE001 - the call failed: each of its jobs gets the error
            for j in owners:
                failed.setdefault(j, exc)
        finally:
            self._model.transformer.clear_cache()  # a sample() that raised leaves this thread's text cache behind
        return made
