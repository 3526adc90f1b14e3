"""Text in: whitespace and vocabulary checks, and the chunks a text is spoken in."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.core.errors import InvalidRequest, TextNotRepresentable
from consumer.engine import Reference, SynthesisJob
from consumer.engine.f5.chunking import check_representable, normalized_text, split_into_chunks, split_long
from contracts.requests import SynthesisOptions

VOCAB = {c: i for i, c in enumerate(" abcdefghijklmnopqrstuvwxyz.,'")}


def _job(text: str, transcript: str = "A transcript. ") -> SynthesisJob:
    reference = Reference(np.zeros(24000, dtype=np.float32), 24000, transcript)
    return SynthesisJob(text, reference, SynthesisOptions(), seed=1)


def test_split_long_cuts_at_spaces_within_the_byte_limit():
    words = "alpha beta gamma delta epsilon zeta"
    pieces = split_long(words, 12)
    assert pieces == ["alpha beta", "gamma delta", "epsilon zeta"]
    assert " ".join(pieces) == words and all(len(p.encode()) <= 12 for p in pieces)


def test_split_long_counts_utf8_bytes_and_cuts_between_characters_without_spaces():
    text = "你好欢迎使用语音合成"  # 10 characters of 3 bytes
    pieces = split_long(text, 9)
    assert pieces == ["你好欢", "迎使用", "语音合", "成"]
    assert "".join(pieces) == text


def test_split_long_keeps_a_word_longer_than_the_limit_whole():
    assert split_long("a incomprehensibilities b", 5) == ["a", "incomprehensibilities", "b"]


def test_normalized_text_collapses_whitespace_and_refuses_blank_text_or_transcript():
    assert normalized_text(_job("  Hello \n\t world  ")) == "Hello world"
    with pytest.raises(InvalidRequest, match="text to synthesize is empty"):
        normalized_text(_job(" \n "))
    with pytest.raises(InvalidRequest, match="reference transcript is empty"):
        normalized_text(_job("Hello", transcript="   "))


def test_representable_text_passes_and_unknown_characters_are_named_once_each():
    check_representable("it's a test, really.", "the text", VOCAB)
    with pytest.raises(TextNotRepresentable, match=r"^the text contains") as info:
        check_representable("a ☃ b ☃ c !", "the text", VOCAB)
    assert str(info.value).endswith("cannot represent: '☃' (U+2603), '!' (U+0021)")


def test_more_than_twenty_unknown_characters_are_counted_not_listed():
    unknown = "".join(chr(0x2600 + i) for i in range(25))
    with pytest.raises(TextNotRepresentable, match=r"and 5 more$") as info:
        check_representable(unknown, "the reference transcript", VOCAB)
    assert "U+2613" in str(info.value) and "U+2614" not in str(info.value)  # the 20th shown, the 21st not


def test_chunks_are_sized_from_the_reference_speaking_rate():
    """A 1 s reference speaking 20 bytes leaves 21 s: up to 420 bytes per chunk at speed 1, half at 0.5."""
    reference = Reference(np.zeros(24000, dtype=np.float32), 24000, "x" * 19 + " ")
    sentence = "Each sentence here is about sixty bytes long, give or take. "
    text = (sentence * 12).strip()
    normal = split_into_chunks(text, reference)
    slow = split_into_chunks(text, reference, speed=0.5)
    assert " ".join(normal) == text and " ".join(slow) == text
    assert all(len(c.encode()) <= 420 for c in normal) and all(len(c.encode()) <= 210 for c in slow)
    assert len(slow) > len(normal) >= 2


def test_a_run_on_sentence_over_twice_the_chunk_size_is_split_at_spaces():
    reference = Reference(np.zeros(24000, dtype=np.float32), 24000, "x" * 19 + " ")
    words = " ".join(["word"] * 400)  # 1999 bytes without a sentence end; the hard limit is 2 * 420 bytes
    chunks = split_into_chunks(words, reference)
    assert len(chunks) == 3 and " ".join(chunks) == words
    assert all(len(c.encode()) <= 840 for c in chunks)
