"""Cross-message batching behind the `Engine` interface. Torch-free.

Each message's lifecycle thread calls `BatchingEngine.synthesize(job)` as it would call any engine, so each
message keeps its own heartbeat, claim, idempotency and events. Behind that call one dispatcher thread
gathers compatible jobs (same `sampler_key`: one `CFM.sample` call has one step count, CFG strength, sway
coefficient and step schedule) for up to `window_s` after the first one arrives, or until `max_batch` are
waiting, and hands them to the inner engine's `synthesize_batch` in one call. Each caller gets its own
result, or its own exception raised in its own thread.

- Length: the jobs of one dispatch are sorted by estimated audio length and split where the longest would be
  more than `max_length_ratio` times the shortest, so that short jobs do not pay for a long one's padding.
- Abort: a job whose `should_abort()` fires while it waits in the queue leaves it at once with
  `SynthesisAborted` (its caller polls); once in a running batch, the inner engine checks it per item.
- `close()` stops the dispatcher after the batch in progress; jobs still queued get `EngineError`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from consumer.core.errors import EngineError, SynthesisAborted
from consumer.core.logs import get_logger
from consumer.engine import Engine, SamplerKey, SynthesisJob, SynthesizedAudio, sampler_key

log = get_logger(__name__)

MAX_ITEM_S = 22.0  # the F5 engine chunks texts so that reference + chunk stay within about this


class BatchCapableEngine(Engine, Protocol):
    def synthesize_batch(self, jobs: Sequence[SynthesisJob]) -> list[SynthesizedAudio | BaseException]:
        """One result or exception per job, in order."""


def estimate_s(job: SynthesisJob) -> float:
    """Length of one batch item in seconds, as F5 sizes it: the reference plus the text at the reference's
    bytes per second, divided by speed; long texts are chunked, so an item never exceeds MAX_ITEM_S."""
    ref_s = max(job.reference.duration_s, 1e-3)
    ref_bytes = max(len(job.reference.transcript.encode("utf-8")), 1)
    text_s = len(job.text.encode("utf-8")) * ref_s / ref_bytes / job.options.speed
    return min(ref_s + text_s, MAX_ITEM_S)


def split_by_length(entries: list[_Waiting], max_ratio: float) -> list[list[_Waiting]]:
    """Sorted by estimated length; a new group starts where an entry exceeds `max_ratio` times its group's
    shortest."""
    groups: list[list[_Waiting]] = []
    for entry in sorted(entries, key=lambda e: e.length_s):
        if groups and entry.length_s <= max_ratio * groups[-1][0].length_s:
            groups[-1].append(entry)
        else:
            groups.append([entry])
    return groups


@dataclass(eq=False)
class _Waiting:
    job: SynthesisJob
    key: SamplerKey
    length_s: float
    enqueued: float
    done: threading.Event = field(default_factory=threading.Event)
    result: SynthesizedAudio | BaseException | None = None
    taken: bool = False  # handed to the dispatcher: its caller no longer removes it

    def finish(self, result: SynthesizedAudio | BaseException) -> None:
        self.result = result
        self.done.set()


class BatchingEngine:
    """`Engine` over an engine with `synthesize_batch`; `synthesize` may be called from many threads."""

    def __init__(
        self,
        inner: BatchCapableEngine,
        *,
        max_batch: int = 4,
        window_s: float = 0.02,
        max_length_ratio: float = 2.0,
        abort_poll_s: float = 0.05,
    ) -> None:
        if max_batch < 1 or window_s < 0 or max_length_ratio < 1:
            raise ValueError("max_batch >= 1, window_s >= 0 and max_length_ratio >= 1 are required")
        self.inner = inner
        self.model_id = inner.model_id
        self.device = inner.device
        self.sample_rate = inner.sample_rate
        self.max_batch = max_batch
        self.window_s = window_s
        self.max_length_ratio = max_length_ratio
        self._abort_poll_s = abort_poll_s
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._closed = False
        self._dispatcher: threading.Thread | None = None
        self._sizes: Counter[int] = Counter()

    # --- Engine ------------------------------------------------------------------------------------------
    def load(self) -> None:
        self.inner.load()

    def warm_up(self) -> None:
        self.inner.warm_up()

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        entry = _Waiting(job, sampler_key(job.options), estimate_s(job), time.monotonic())
        with self._cond:
            if self._closed:
                raise EngineError("the engine is closed")
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._run, name="batch-dispatcher", daemon=True)
                self._dispatcher.start()
            self._queue.append(entry)
            self._cond.notify_all()
        while not entry.done.wait(self._abort_poll_s):
            if job.should_abort():
                with self._cond:
                    if not entry.taken:
                        self._queue.remove(entry)
                        self._cond.notify_all()
                        raise SynthesisAborted("synthesis aborted while waiting for a batch")
                # already in a batch: the inner engine sees the abort and answers for this job
        if isinstance(entry.result, BaseException):
            raise entry.result
        assert entry.result is not None
        return entry.result

    def synthesize_stream(self, job: SynthesisJob) -> Iterator[np.ndarray]:
        """Long texts go to the inner engine chunk by chunk, between batches (not batched themselves)."""
        yield from self.inner.synthesize_stream(job)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.join()
        with self._cond:
            stranded, self._queue = self._queue, []
        for entry in stranded:
            entry.finish(EngineError("the engine closed before this job was synthesized"))
        self.inner.close()

    # --- observation -------------------------------------------------------------------------------------
    @property
    def batch_sizes(self) -> Counter[int]:
        """How many `synthesize_batch` calls had each number of jobs (a copy)."""
        with self._cond:
            return Counter(self._sizes)

    @property
    def queued(self) -> int:
        """Jobs waiting for a batch (not yet handed to the inner engine)."""
        with self._cond:
            return len(self._queue)

    # --- the dispatcher ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while (batch := self._collect()) is not None:
                self._dispatch(batch)
        except Exception:  # a bug here would strand every caller: fail them instead
            log.exception("batch_dispatcher_crashed")
            with self._cond:
                self._closed = True
                stranded, self._queue = self._queue, []
            for entry in stranded:
                entry.finish(EngineError("the batch dispatcher crashed"))

    def _collect(self) -> list[_Waiting] | None:
        """Blocks until the oldest job's window has passed or max_batch compatible jobs wait; takes them."""
        with self._cond:
            while not self._closed:
                if not self._queue:
                    self._cond.wait()
                    continue
                head = self._queue[0]
                same = [e for e in self._queue if e.key == head.key]
                left = head.enqueued + self.window_s - time.monotonic()
                if len(same) >= self.max_batch or left <= 0:
                    taken = same[: self.max_batch]
                    for entry in taken:
                        entry.taken = True
                        self._queue.remove(entry)
                    return taken
                self._cond.wait(left)
            return None

    def _dispatch(self, batch: list[_Waiting]) -> None:
        live = []
        for entry in batch:
            if entry.job.should_abort():
                entry.finish(SynthesisAborted("synthesis aborted while waiting for a batch"))
            else:
                live.append(entry)
        for group in split_by_length(live, self.max_length_ratio):
            self._call(group)

    def _call(self, group: list[_Waiting]) -> None:
        with self._cond:
            self._sizes[len(group)] += 1
        started = time.monotonic()
        results: Sequence[SynthesizedAudio | BaseException]
        try:
            results = self.inner.synthesize_batch([e.job for e in group])
            if len(results) != len(group):
                raise EngineError(f"the engine answered {len(results)} results for {len(group)} jobs")
        except Exception as exc:  # noqa: BLE001 - the whole call failed: every caller in it gets the error
            results = [exc] * len(group)
        log.debug("batch_synthesized", jobs=len(group), elapsed_s=round(time.monotonic() - started, 3))
        for entry, result in zip(group, results, strict=True):
            entry.finish(result)
