"""A streamed job's first chunk is cut short (`consumer.engine.first_chunk`): at the first sentence, else clause,
else word within the bound; the F5 plan and the fake engine both follow it, and a job that is not streamed keeps
its chunks exactly."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from consumer.engine import SynthesisJob
from consumer.engine.f5.chunking import split_into_chunks
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
        ("x" * 100 + " tail", "x" * 100),  # one word over the bound stays whole
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
    assert len(cut.encode()) <= FIRST_CHUNK_MAX_BYTES or " " not in cut
    assert " ".join(p for p in (cut, rest) if p) == " ".join(text.split()) or "，" in text
    if cut == text.strip():
        assert rest == ""


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
    started = time.monotonic()
    arrivals, blocks = [], []
    for block in engine.synthesize_stream(_job(text, stream=True)):
        arrivals.append(time.monotonic() - started)
        blocks.append(block)
    assert len(blocks) == 4 and arrivals[0] < 0.35 and arrivals[-1] > 0.75  # one chunk's time each
    assert np.array_equal(np.concatenate(blocks), whole)
