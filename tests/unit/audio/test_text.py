"""English text normalisation (numbers, amounts, dates, times, units, abbreviations) and its request option."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.audio.text import normalize_english
from consumer.engine.fake import FakeEngine
from tests.scenarios.test_worker_flow import request


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
        ("Raised £5m, then $2.5 billion.", "Raised five million pounds, then two point five billion dollars."),
        ("A €3bn deal and $10K.", "A three billion euros deal and ten thousand dollars."),
        ("No digits here.", "No digits here."),
        ("你好，123。", "你好，123。"),  # not mostly Latin: left alone
        ("Baker St. is long.", "Baker St. is long."),  # Saint or Street: ambiguous, left alone
    ],
)
def test_numbers_amounts_and_abbreviations_are_spelled_out(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Due 2024-03-05.", "Due March fifth, twenty twenty-four."),
        ("Sent 2024-03-05T14:30.", "Sent March fifth, twenty twenty-four, fourteen thirty."),
        ("On March 5, 2024 we met.", "On March fifth, twenty twenty-four we met."),
        ("On 5 March 2024 we met.", "On the fifth of March twenty twenty-four we met."),
        ("It is March 5th.", "It is March fifth."),
        ("Since the 1st of May.", "Since the first of May."),
        ("By 21st of June 1999.", "By the twenty-first of June nineteen ninety-nine."),
        ("Due Jan. 5 and Sept 12.", "Due January fifth and September twelfth."),
        ("Born 5 Jan 2024.", "Born the fifth of January twenty twenty-four."),
        ("Leap day: Feb 29.", "Leap day: February twenty-ninth."),
        ("On 25/12/2024.", "On December twenty-fifth, twenty twenty-four."),  # only day/month reads as a date
        ("On 12/25/2024.", "On December twenty-fifth, twenty twenty-four."),  # only month/day does
        ("On 03/03/2024.", "On March third, twenty twenty-four."),  # both orders agree
        ("In May 2024.", "In May twenty twenty-four."),  # no day: the year rule alone
    ],
)
def test_dates_are_spoken(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize(
    "text",
    [
        "On 05/03/2024.",  # day/month order unknown
        "On 05-03-2024.",
        "On 13/13/2024.",  # no reading is a date
        "On 2024-02-30.",  # no such day
        "On 2024-13-01.",
    ],
)
def test_ambiguous_or_invalid_dates_are_left_as_written(text):
    assert normalize_english(text) == text


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("I have 5 Jan.", "I have five Jan."),  # an abbreviated month after a day needs a year
        ("March 45 days", "March forty-five days"),  # no such day
        ("I marched 5 miles.", "I marched five miles."),
        ("Maybe 5 more.", "Maybe five more."),
    ],
)
def test_month_names_without_a_date_are_not_dates(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("At 14:30 sharp.", "At fourteen thirty sharp."),
        ("At 9:05.", "At nine oh five."),
        ("At 10:00.", "At ten o'clock."),
        ("At 13:00.", "At thirteen hundred."),
        ("At 00:00 or 24:00.", "At midnight or midnight."),
        ("At 00:15.", "At twelve fifteen A M."),
        ("At 2:30 pm.", "At two thirty P M."),
        ("At 2:30PM.", "At two thirty P M."),
        ("At 2pm.", "At two P M."),
        ("At 10:00 am.", "At ten A M."),
        ("At 12:05 a.m.", "At twelve oh five A M."),  # `a.m.` ends the sentence: its full stop stays
        ("At 9 a.m. tomorrow.", "At nine A M tomorrow."),
        ("At 9 a.m., then", "At nine A M, then"),
        ("At 9 A.M. Then", "At nine A M. Then"),
        ("John 3:16", "John three sixteen"),
    ],
)
def test_times_are_spoken(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize("text", ["At 25:61.", "At 24:30.", "At 13 pm.", "At 0 am.", "At 12:60 pm."])
def test_invalid_times_are_left_as_written(text):
    assert normalize_english(text) == text


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("I am here.", "I am here."),  # `am` only after a number
        ("I'm 5.", "I'm five."),
        ("Draw 5 amps.", "Draw five amps."),
        ("PM me at 5.", "PM me at five."),
        ("Ratio 3:1.", "Ratio three:one."),  # minutes need two digits
        ("Ran 1:30:45.", "Ran one:thirty:forty-five."),  # seconds: not a time of day, numbers as before
    ],
)
def test_things_that_are_not_times_are_not_times(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("1 km", "one kilometer"),
        ("2.5 km", "two point five kilometers"),
        ("1.0 km", "one point zero kilometers"),
        ("5 m and 3 cm and 2mm", "five meters and three centimeters and two millimeters"),
        ("5 kg, 100g, 1 mg", "five kilograms, one hundred grams, one milligram"),
        ("1 lb 2 lbs 3 oz", "one pound two pounds three ounces"),
        ("100 km/h or 60 mph, 1 m/s", "one hundred kilometers per hour or sixty miles per hour, one meter per second"),
        ("-3 °C and 1°F, 90°", "minus three degrees Celsius and one degree Fahrenheit, ninety degrees"),
        ("500 ml, 1 L, 2 l", "five hundred milliliters, one liter, two liters"),
        (
            "8 GB, 512 MB, 1 TB, 64 KB",
            "eight gigabytes, five hundred and twelve megabytes, one terabyte, sixty-four kilobytes",
        ),
        ("3.2 GHz, 100 MHz, 50 Hz", "three point two gigahertz, one hundred megahertz, fifty hertz"),
        ("2 kW, 60W, 12 V", "two kilowatts, sixty watts, twelve volts"),
        ("2 hrs, 1 h, 3 hr", "two hours, one hour, three hours"),
        ("5 min, 30 sec, 1 s, 250 ms", "five minutes, thirty seconds, one second, two hundred and fifty milliseconds"),
        ("1,500 km", "one thousand, five hundred kilometers"),  # a number, not the year 1500
        ("Up 15 %.", "Up fifteen percent."),
    ],
)
def test_units_after_a_number_are_spoken(text, spoken):
    assert normalize_english(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("I'm tall.", "I'm tall."),
        ("5m people", "5m people"),  # five million, or five meters: `m` needs a space
        ("The 1980s.", "The 1980s."),  # `s` needs a space too
        ("Roll 10s.", "Roll 10s."),
        ("A 5G phone.", "A 5G phone."),  # units are case-sensitive
        ("Sing 5 songs.", "Sing five songs."),  # a unit only as a whole word
        ("Go in 5 min.", "Go in five minutes."),
    ],
)
def test_unit_letters_that_are_not_units_are_left_alone(text, spoken):
    assert normalize_english(text) == spoken


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("0123456789.,$£€%-stndrh Dr.Mr.e.g. abc"), max_size=80)
    | st.text(alphabet=st.sampled_from("0123456789 :/-.,T°apmAPM kmgsGBHzW March Jan Sept the of"), max_size=80)
    | st.text(max_size=80)
)
def test_normalisation_never_raises(text):
    assert isinstance(normalize_english(text), str)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcxyz .,!?'"), max_size=80))
def test_text_without_digits_or_abbreviations_is_unchanged(text):
    assert normalize_english(text) == text


def test_huge_numbers_are_left_as_digits():
    digits = "9" * 40
    assert normalize_english(f"Count {digits} stars.") == f"Count {digits} stars."
    assert normalize_english(f"Go {digits} km.") == f"Go {digits} km."


def test_the_worker_speaks_normalised_text_unless_the_request_opts_out(stack, make_worker):
    stack.send(request("norm-1", text="I have 3 apples."))
    stack.send(request("norm-2", text="I have 3 apples.", options={"normalize_text": False}))
    engine = FakeEngine()
    worker, _ = make_worker(engine)
    worker.run()
    assert sorted(engine.texts) == ["I have 3 apples.", "I have three apples."]
