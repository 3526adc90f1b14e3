"""The batch plan: jobs into chunks and seeds, chunks into items, items into `CFM.sample` calls.

Items with the same `sampler_key` are sorted by length and cut into calls of at most the item cap's value
(`consumer.engine.f5.memory.ItemCap`), so that padding stays small."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from consumer.core.errors import InvalidRequest
from consumer.engine import Reference, SamplerKey, SynthesisJob, sampler_key
from consumer.engine.f5.chunking import (
    check_representable,
    chunk_max_bytes,
    normalized_text,
    split_into_chunks,
)
from consumer.engine.f5.items import Item, make_item
from consumer.engine.f5.memory import ItemCap
from consumer.engine.f5.prompts import Prompt
from consumer.engine.f5.seeding import chunk_seed
from consumer.engine.first_chunk import FIRST_CHUNK_MAX_BYTES, first_chunk_cut


@dataclass(frozen=True)
class ChunkPlan:
    """A job's chunks and the seed of each."""

    chunks: list[str]
    seeds: tuple[int, ...]


def plan_job(job: SynthesisJob, text: str, vocab: dict[str, int]) -> ChunkPlan:
    """Vocabulary checks of the transcript and `text` (the job's normalized text), chunks and chunk seeds. A
    streamed job's first chunk is cut short (`consumer.engine.first_chunk`)."""
    check_representable(job.reference.transcript, "the reference transcript", vocab)
    check_representable(text, "the text", vocab)
    if job.stream:  # the first audio after a short synthesis; the rest as without streaming
        bound = min(FIRST_CHUNK_MAX_BYTES, chunk_max_bytes(job.reference, job.options.speed))
        first, rest = first_chunk_cut(text, bound)  # never longer than a chunk (a long reference leaves less)
        chunks = [first, *(split_into_chunks(rest, job.reference, job.options.speed) if rest else [])]
    else:
        chunks = split_into_chunks(text, job.reference, job.options.speed)
    if not chunks:
        raise InvalidRequest("the text to synthesize has nothing to speak")
    return ChunkPlan(chunks, tuple(chunk_seed(job.seed, i) for i in range(len(chunks))))


def plan_items(
    jobs: Sequence[SynthesisJob],
    vocab: dict[str, int],
    prompt_for: Callable[[Reference], Prompt],
    hop_length: int,
    failed: dict[int, BaseException],
) -> tuple[dict[int, ChunkPlan], list[Item]]:
    """Every chunk of every job as an item, with each planned job's plan. A job that cannot be planned
    (invalid or unrepresentable text) gets its exception in `failed`; a planned one hears `on_progress(0, n)`."""
    plans: dict[int, ChunkPlan] = {}
    items: list[Item] = []
    for j, job in enumerate(jobs):
        try:
            plan = plan_job(job, normalized_text(job), vocab)
            prompt = prompt_for(job.reference)
        except Exception as exc:  # noqa: BLE001 - handed to that job alone
            failed[j] = exc
            continue
        plans[j] = plan
        for i, (chunk, seed) in enumerate(zip(plan.chunks, plan.seeds, strict=True)):
            items.append(make_item(j, i, prompt, job.reference.transcript, chunk, job.options, seed, hop_length))
        job.on_progress(0, len(plan.chunks))
    return plans, items


def cut_into_calls(items: list[Item], cap: ItemCap) -> Iterator[list[Item]]:
    """Items that can share one `CFM.sample` call (same `sampler_key`), by length, at most `cap.value` per
    call (read as each call is cut: a cap lowered by a running call applies at once)."""
    by_options: dict[SamplerKey, list[Item]] = {}
    for it in items:
        by_options.setdefault(sampler_key(it.options), []).append(it)
    for same in by_options.values():
        same.sort(key=lambda it: it.frames)
        start = 0
        while start < len(same):
            size = cap.value
            yield same[start : start + size]
            start += size
