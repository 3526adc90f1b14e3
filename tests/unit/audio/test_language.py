"""English normalisation touches English only: the request's `language` decides, else a rule that never
rewrites what it cannot call English, checked on a committed corpus of eight languages."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from consumer.audio.language import is_english, looks_english
from consumer.audio.text import normalize_english
from consumer.worker.synthesize import spoken_text
from contracts.requests import SynthesisRequest
from tests.paths import DATA

CORPUS = json.loads((DATA / "languages.json").read_text(encoding="utf-8"))
NON_ENGLISH = [(lang, s) for lang, sentences in CORPUS.items() if lang != "en" for s in sentences]


def _request(text: str, **fields) -> SynthesisRequest:
    return SynthesisRequest.model_validate({"job_id": "j", "text": text, "voice": {"voice_id": "v"}, **fields})


@pytest.mark.parametrize(("lang", "sentence"), NON_ENGLISH)
def test_other_languages_pass_through_unchanged_without_a_language(lang, sentence):
    assert normalize_english(sentence) != sentence or lang in ("zh", "ja")  # the corpus has something to rewrite
    assert not looks_english(sentence)
    assert spoken_text(_request(sentence), sentence) == sentence


@pytest.mark.parametrize("sentence", CORPUS["en"])
def test_english_is_still_normalised(sentence):
    assert looks_english(sentence)
    assert spoken_text(_request(sentence), sentence) == normalize_english(sentence) != sentence


def test_the_request_language_decides_when_given():
    french, english = CORPUS["fr"][0], CORPUS["en"][0]
    assert spoken_text(_request(english, language="fr"), english) == english
    assert spoken_text(_request(english, language="en-GB"), english) == normalize_english(english)
    # a text the rule cannot place is left alone, unless the producer says it is English
    terse = "Gate 5, 14:30."
    assert spoken_text(_request(terse), terse) == terse
    assert spoken_text(_request(terse, language="en"), terse) == normalize_english(terse) != terse
    assert not is_english(french, "de") and is_english(french, "EN")
    assert spoken_text(_request(english, options={"normalize_text": False}), english) == english


@pytest.mark.parametrize("tag", ["english", "e", "en_US", "en-", "x" * 40])
def test_language_must_be_a_bcp47_tag(tag):
    with pytest.raises(ValidationError):
        _request("Hello.", language=tag)


def test_the_corpus_covers_the_eight_languages():
    assert set(CORPUS) == {"en", "fr", "de", "es", "it", "pt", "zh", "ja"}
    assert all(len(sentences) >= 4 for sentences in CORPUS.values())
