"""A streamed job's first chunk is cut short (`consumer.engine.first_chunk`): at the first sentence, else clause,
else word within the bound; the F5 plan and the fake engine both follow it, and a job that is not streamed keeps
its chunks exactly."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from consumer.engine import Reference, SynthesisJob
from consumer.engine.f5.chunking import chunk_max_bytes, split_into_chunks
from consumer.engine.f5.planning import plan_job
from consumer.engine.fake import FakeEngine
from consumer.engine.first_chunk import FIRST_CHUNK_MAX_BYTES, first_chunk_cut
from contracts.requests import SynthesisOptions
from tests.unit.engine.test_planning import LONG, REFERENCE, VOCAB

CJK = "这是第一句话，然后是第二个分句，这句话非常非常长需要被切开才能快速生成第一段音频。后面还有。"


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Hello there. A second sentence follows it here, and it keeps going well past the bound.", "Hello there."),
        ("Short one!  And then the rest of a long text, which goes on past eighty bytes of it.", "Short one!"),
        (
            "A long opening sentence, with a clause here, and another there, that runs on without any full stop.",
            "A long opening sentence, with a clause here, and another there,",
        ),
        (" ".join(["word"] * 40), " ".join(["word"] * 16)),  # 16 words of 5 bytes: 79 bytes
        ("x" * 100 + " tail", "x" * 80),  # a word over the bound is cut between characters
        ("A clause — then words that run on and on and on well past the bound of eighty bytes.", "A clause —"),
        ("An opening—then words that run on and on and on well past the bound of eighty bytes.", "An opening—"),
        (
            "这是第一句话，然后是第二个分句，这句话非常非常长需要被切开才能快速生成第一段音频。后面还有。",
            "这是第一句话，然后是第二个分句，",
        ),
        ("Fits whole.", "Fits whole."),
    ],
)
def test_the_first_chunk_ends_at_a_sentence_else_a_clause_else_a_word(text, first):
    cut, rest = first_chunk_cut(text)
    assert cut == first
    assert len(cut.encode()) <= FIRST_CHUNK_MAX_BYTES
    assert " ".join(text.split()) in (f"{cut} {rest}", cut + rest)  # nothing lost, nothing added
    if cut == text.strip():
        assert rest == ""


def test_text_without_spaces_or_marks_is_cut_between_characters_not_taken_whole():
    text = "这是一段没有标点的很长的中文文本它会一直写下去" * 6 + "，结束。"  # no mark in the first 80 bytes
    cut, rest = first_chunk_cut(text)
    assert cut == text[:26] and len(cut.encode()) == 78 and cut + rest == text  # 26 characters of 3 bytes
    assert first_chunk_cut("é" * 50, 5) == ("éé", "é" * 48)  # never half a character


def _job(text: str, stream: bool) -> SynthesisJob:
    return SynthesisJob(text, REFERENCE, SynthesisOptions(), 7, stream=stream)


def test_a_streamed_plan_cuts_only_its_first_chunk():
    whole = plan_job(_job(LONG, stream=False), LONG, VOCAB)
    assert whole.chunks == split_into_chunks(LONG, REFERENCE)  # not streamed: exactly as before
    streamed = plan_job(_job(LONG, stream=True), LONG, VOCAB)
    first, rest = first_chunk_cut(LONG)
    assert streamed.chunks == [first, *split_into_chunks(rest, REFERENCE)]
    assert len(streamed.chunks[0].encode()) <= FIRST_CHUNK_MAX_BYTES < len(whole.chunks[0].encode())
    assert len(streamed.seeds) == len(streamed.chunks)


def test_a_long_reference_caps_the_first_chunk_at_its_chunk_size():
    reference = Reference(np.zeros(15 * 24000, dtype=np.float32), 24000, "x" * 59 + " ")  # 4 bytes/s, 7 s left
    text = " ".join(["word"] * 40)
    plan = plan_job(SynthesisJob(text, reference, SynthesisOptions(), 7, stream=True), text, VOCAB)
    assert chunk_max_bytes(reference) == 28 and plan.chunks[0] == " ".join(["word"] * 5)  # 24 bytes, not 79
    assert " ".join(plan.chunks) == text


def test_the_tiny_engine_streams_a_short_first_block(tiny_engine, en_reference):
    text = "Hello there. " + " ".join(["This sentence is long enough to fill a whole chunk of its own."] * 3)
    job = SynthesisJob(text, en_reference, SynthesisOptions(nfe_steps=4), 3)
    whole_first = next(iter(tiny_engine.synthesize_stream(job)))
    streamed = list(tiny_engine.synthesize_stream(dataclasses.replace(job, stream=True)))
    assert len(streamed[0]) < len(whole_first) / 2  # "Hello there." alone, not a full chunk
    assert sum(len(b) for b in streamed) > 4 * len(streamed[0])


def test_the_fake_engine_yields_each_chunk_as_it_is_made_and_adds_up_to_the_whole():
    engine = FakeEngine(chunk_s=0.2)
    text = "A first short one. Then a second sentence. And a third sentence here. The fourth ends it."
    whole = FakeEngine().synthesize(_job(text, stream=False)).samples
    progress: list[tuple[int, int]] = []
    job = dataclasses.replace(_job(text, stream=True), on_progress=lambda i, n: progress.append((i, n)))
    started = time.monotonic()
    arrivals, blocks = [], []
    for block in engine.synthesize_stream(job):
        arrivals.append(time.monotonic() - started)
        blocks.append(block)
    assert len(blocks) == 4 and arrivals[0] < 0.35 and arrivals[-1] > 0.75  # one chunk's time each
    assert np.array_equal(np.concatenate(blocks), whole)
    assert progress == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # before each chunk, then the end
    not_streamed = list(FakeEngine().synthesize_stream(_job(text, stream=False)))
    assert len(not_streamed) == 4 and np.array_equal(np.concatenate(not_streamed), whole)


def test_the_fake_engine_cuts_a_long_first_sentence_as_the_f5_plan_does():
    text = "A first sentence that is long, with a clause, and it keeps going well past eighty bytes. Then more."
    blocks = list(FakeEngine().synthesize_stream(_job(text, stream=True)))
    first, _rest = first_chunk_cut(text)
    assert first == "A first sentence that is long, with a clause," and len(blocks) == 3  # the cut, its rest, "Then"
    assert abs(len(blocks[0]) / sum(len(b) for b in blocks) - len(first) / len(text)) < 0.02
