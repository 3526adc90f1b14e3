"""The batch plan: jobs into chunks, seeds and items; items into `CFM.sample` calls under the item cap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from consumer.core.errors import InvalidRequest, TextNotRepresentable
from consumer.engine import Reference, SynthesisJob
from consumer.engine.f5.items import Item, make_item
from consumer.engine.f5.memory import ItemCap
from consumer.engine.f5.planning import cut_into_calls, plan_items, plan_job
from consumer.engine.f5.prompts import Prompt
from consumer.engine.f5.seeding import chunk_seed
from contracts.requests import SynthesisOptions

HOP = 256
VOCAB = {c: i for i, c in enumerate(" abcdefghijklmnopqrstuvwxyz.,'ABCDEFGHIJKLMNOPQRSTUVWXYZ")}
PROMPT = Prompt(mel=torch.zeros(1, 100, 100), rms=torch.tensor(0.2), n_samples=100 * HOP)
REFERENCE = Reference(np.zeros(24000, dtype=np.float32), 24000, "x" * 19 + " ")  # 20 bytes a second
LONG = " ".join(["Here is a sentence of some length that keeps going."] * 12)  # several chunks


def _job(text: str, seed: int = 5, progress: list | None = None, **options) -> SynthesisJob:
    report = (lambda i, n: progress.append((i, n))) if progress is not None else (lambda i, n: None)
    return SynthesisJob(text, REFERENCE, SynthesisOptions(**options), seed, on_progress=report)


def _items(frames_and_steps: list[tuple[int, int]]) -> list[Item]:
    """Items whose text length sets their frames, with the given step counts (which split sampler keys)."""
    return [
        make_item(j, 0, PROMPT, "x" * 19, "y" * frames, SynthesisOptions(nfe_steps=steps), j, HOP)
        for j, (frames, steps) in enumerate(frames_and_steps)
    ]


def test_a_job_plan_is_its_chunks_with_their_seeds():
    plan = plan_job(_job(LONG, seed=9), LONG, VOCAB)
    assert len(plan.chunks) >= 2 and " ".join(plan.chunks) == LONG
    assert plan.seeds == tuple(chunk_seed(9, i) for i in range(len(plan.chunks)))


def test_a_job_with_unrepresentable_text_or_transcript_is_refused():
    with pytest.raises(TextNotRepresentable, match=r"^the text"):
        plan_job(_job("Hello ☃"), "Hello ☃", VOCAB)
    bad_transcript = SynthesisJob("Hello", Reference(REFERENCE.samples, 24000, "Hi ☃ "), SynthesisOptions(), 1)
    with pytest.raises(TextNotRepresentable, match=r"^the reference transcript"):
        plan_job(bad_transcript, "Hello", VOCAB)


def test_every_chunk_of_every_plannable_job_becomes_an_item_and_the_others_fail_alone():
    progress: list[tuple[int, int]] = []
    jobs = [_job(LONG, seed=3, progress=progress), _job("   "), _job("Hello ☃"), _job("Hello there.", seed=4)]
    failed: dict[int, BaseException] = {}
    plans, items = plan_items(jobs, VOCAB, lambda reference: PROMPT, HOP, failed)
    assert set(plans) == {0, 3} and isinstance(failed[1], InvalidRequest)
    assert isinstance(failed[2], TextNotRepresentable)
    n = len(plans[0].chunks)
    assert [(it.job, it.chunk, it.seed) for it in items] == [
        *((0, i, chunk_seed(3, i)) for i in range(n)),
        (3, 0, 4),
    ]
    assert [it.text for it in items[:n]] == plans[0].chunks and all(it.prompt is PROMPT for it in items)
    assert progress == [(0, n)]  # a planned job hears (0, n) once


def test_calls_share_a_sampler_key_and_hold_items_of_similar_length():
    items = _items([(50, 8), (10, 8), (30, 4), (40, 8), (20, 4), (30, 8)])
    calls = list(cut_into_calls(items, ItemCap(limit=2, cool_down=1)))
    assert [[it.job for it in call] for call in calls] == [[1, 5], [3, 0], [4, 2]]
    for call in calls:
        assert len({it.options.nfe_steps for it in call}) == 1
        assert [it.frames for it in call] == sorted(it.frames for it in call)


def test_a_cap_lowered_while_calls_are_cut_applies_to_the_next_call():
    items = _items([(10 * (i + 1), 8) for i in range(8)])
    cap = ItemCap(limit=4, cool_down=10)
    sizes = []
    for call in cut_into_calls(items, cap):
        sizes.append(len(call))
        if len(sizes) == 1:
            cap.lowered(4)  # the first call ran out of memory: later calls hold 2
    assert sizes == [4, 2, 2]
