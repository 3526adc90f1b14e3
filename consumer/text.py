"""English text normalisation before synthesis: numbers, ordinals, years, percentages, currency amounts and
common abbreviations become words, via the maintained `num2words` library. F5-TTS reads digits poorly (its
vocabulary holds the characters, but the model saw few of them spoken).

Covered (English only): integers with thousands separators (`1,234`), decimals (`3.5`), negative numbers,
ordinals (`21st`), four-digit years 1100-2099 standing alone (`in 1999`), percentages (`15%`), amounts in
USD/GBP/EUR (`$12.50`, `£3`, `€1,000`), and the unambiguous abbreviations in `_ABBREVIATIONS` (not `St.`,
which is Saint or Street). Not covered: dates in
numeric form (`3/4/2025` is ambiguous), times, units, phone numbers, other languages (text that is not mostly
Latin letters is returned unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from num2words import num2words

_ABBREVIATIONS = {
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Dr.": "Doctor",
    "Prof.": "Professor",
    "Jr.": "Junior",
    "Sr.": "Senior",
    "vs.": "versus",
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
}
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_CURRENCY_RE = re.compile(rf"([$£€])\s?({_NUMBER})")
_PERCENT_RE = re.compile(rf"(-?)({_NUMBER})\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"(?<![\d,.$£€])\b(1[1-9]\d\d|20\d\d)\b(?![\d,%]|\.\d)")
_NUMBER_RE = re.compile(rf"(?<![\w.])(-?)({_NUMBER})(?![\w])")
_ABBREVIATION_RE = re.compile(r"(?<!\w)(" + "|".join(re.escape(a) for a in _ABBREVIATIONS) + r")(?=\s|$)")


_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _words(number: str, negative: str = "") -> str:
    """`3.50` → "three point five zero": decimals are read digit by digit, as written."""
    whole, _, fraction = number.replace(",", "").partition(".")
    words = num2words(int(whole))
    if fraction:
        words += " point " + " ".join(_DIGITS[int(d)] for d in fraction)
    return f"minus {words}" if negative else words


def _amount(symbol: str, number: str) -> str:
    """`$12.50` → "twelve dollars and fifty cents"; `£1` → "one pound"."""
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    whole, _, fraction = number.replace(",", "").partition(".")
    units = int(whole)
    words = f"{num2words(units)} {one if units == 1 else many}"
    cents = int((fraction + "00")[:2]) if fraction else 0
    if cents:
        words += f" and {num2words(cents)} {sub_one if cents == 1 else sub_many}"
    return words


def _spoken(convert: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
    """Apply `convert` to a match; keep the original characters where num2words cannot say it (huge numbers)."""

    def safe(match: re.Match[str]) -> str:
        if len(re.sub(r"\D", "", match.group(0))) > 15:
            return match.group(0)
        try:
            return convert(match)
        except (OverflowError, ValueError, NotImplementedError):
            return match.group(0)

    return safe


def is_mostly_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= 0.5


def normalize_english(text: str) -> str:
    """`text` with numbers, amounts and abbreviations spelled out; unchanged if it is not mostly Latin."""
    if not is_mostly_latin(text) and not re.fullmatch(r"[\W\d_]*", text):
        return text
    text = _ABBREVIATION_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = _CURRENCY_RE.sub(_spoken(lambda m: _amount(m.group(1), m.group(2))), text)
    text = _PERCENT_RE.sub(_spoken(lambda m: f"{_words(m.group(2), m.group(1))} percent"), text)
    text = _ORDINAL_RE.sub(_spoken(lambda m: num2words(int(m.group(1)), to="ordinal")), text)
    text = _YEAR_RE.sub(_spoken(lambda m: num2words(int(m.group(1)), to="year")), text)
    return _NUMBER_RE.sub(_spoken(lambda m: _words(m.group(2), m.group(1))), text)
