"""English text normalisation (numbers, amounts, abbreviations) and its request option."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.engine.fake import FakeEngine
from consumer.text import normalize_english
from tests.test_worker_flow import request


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It costs $12.50 today.", "It costs twelve dollars and fifty cents today."),
        ("Down 15% since 1999.", "Down fifteen percent since nineteen ninety-nine."),
        ("Dr. Smith, 3rd floor.", "Doctor Smith, third floor."),
        ("We sold 1,234 units.", "We sold one thousand, two hundred and thirty-four units."),
        ("It was -4 outside.", "It was minus four outside."),
        ("Version 2.05 is out.", "Version two point zero five is out."),
        ("A fee of £1 or €1,000.05.", "A fee of one pound or one thousand euros and five cents."),
        ("No digits here.", "No digits here."),
        ("你好，123。", "你好，123。"),  # not mostly Latin: left alone
        ("Baker St. is long.", "Baker St. is long."),  # Saint or Street: ambiguous, left alone
    ],
)
def test_numbers_amounts_and_abbreviations_are_spelled_out(text, spoken):
    assert normalize_english(text) == spoken


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789.,$£€%-stndrh Dr.Mr.e.g. abc"), max_size=80) | st.text(max_size=80))
def test_normalisation_never_raises(text):
    assert isinstance(normalize_english(text), str)


def test_huge_numbers_are_left_as_digits():
    digits = "9" * 40
    assert normalize_english(f"Count {digits} stars.") == f"Count {digits} stars."


def test_the_worker_speaks_normalised_text_unless_the_request_opts_out(stack, make_worker):
    stack.send(request("norm-1", text="I have 3 apples."))
    stack.send(request("norm-2", text="I have 3 apples.", options={"normalize_text": False}))
    engine = FakeEngine()
    worker, _ = make_worker(engine)
    worker.run()
    assert sorted(engine.texts) == ["I have 3 apples.", "I have three apples."]
