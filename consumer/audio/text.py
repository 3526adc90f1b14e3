"""English text normalisation before synthesis: numbers, ordinals, years, dates, times, units, percentages,
currency amounts and common abbreviations become words, via the maintained `num2words` library. F5-TTS reads
digits poorly (its vocabulary holds the characters, but the model saw few of them spoken).

Covered (English only): integers with thousands separators (`1,234`), decimals (`3.5`), negative numbers,
ordinals (`21st`), four-digit years 1100-2099 standing alone (`in 1999`), percentages (`15%`), amounts in
USD/GBP/EUR (`$12.50`, `£3`, `€1,000`, `£5m`, `$2.5 billion`), the unambiguous abbreviations in
`_ABBREVIATIONS` (not `St.`, which is Saint or Street), and:

- dates: ISO `2024-03-05` ("March fifth, twenty twenty-four"), `March 5, 2024`, `March 5th`, `5 March 2024`,
  `the 5th of March` ("the fifth of March"); month abbreviations (`Jan.`, `Sept`) only before a day number, or
  after one when a year follows (`5 Jan 2024`). Numeric dates `DD/MM/YYYY` or `MM/DD/YYYY` (also with `-`) are
  spoken only when one reading alone is a valid date (`25/12/2024`); ambiguous ones (`05/03/2024`) and invalid
  dates (`2024-02-30`) are left as written. `2024-03-05T14:30` is read as the date, a comma, then the time.
- times: `14:30` ("fourteen thirty"), `9:05` ("nine oh five"), `10:00` ("ten o'clock"), `13:00` ("thirteen
  hundred"), `00:00`/`24:00` ("midnight"), `00:15` ("twelve fifteen A M"), and 12-hour times with am/pm
  (`2:30 pm`, `2pm`, `9 a.m.` → "two thirty P M", "two P M", "nine A M": spaced capitals, so the letters are
  said). Invalid times (`25:61`, `13 pm`) are left as written. Times with seconds (`14:30:15`) are not times
  here: their numbers are read one by one, as before.
- units after a number, in `_UNITS` (`5 km`, `2.5kg`, `-3 °C`, `100 km/h`, `8 GB`, `3 GHz`, `2 hrs`, `250 ms`),
  singular for exactly 1 ("one kilometer", "two point five kilometers"), in American spelling (`meter`, `liter`;
  British `metre` sounds the same). Units that are also letters or suffixes (`m`, `s`) need a space after the
  number: `5 m`, `10 s`, but not `5m` (five million?) or `1980s`.

Known trade-offs: a capitalised month name before a number is read as a date (`In March 5 people came` → "In
March fifth people came"), and so is `Jan`, `Mar`... before one. Not covered: phone numbers, numeric dates with
two-digit years (`05/03/24`), units not in `_UNITS` (`ft`, `in`), other languages
(text that is not mostly Latin letters is returned unchanged). Normalisation never raises; a form it does not
understand is either left as written or, failing any rule above, its numbers are read one by one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from datetime import date

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
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_BY_PREFIX = {name[:3]: number for number, name in enumerate(_MONTHS, start=1)}  # "Sept"[:3] is "Sep"
# Unit → (singular, plural). Case matters: `g` is gram, `G` is not a unit here (5G).
_UNITS = {
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"),
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "l": ("liter", "liters"),
    "L": ("liter", "liters"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"),
    "W": ("watt", "watts"),
    "kW": ("kilowatt", "kilowatts"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "V": ("volt", "volts"),
    "h": ("hour", "hours"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "sec": ("second", "seconds"),
    "secs": ("second", "seconds"),
    "ms": ("millisecond", "milliseconds"),
}
_SPACED_UNITS = ("m", "s")  # also a letter or a suffix: `5m` may be five million, `1980s` is a decade

_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_SCALES = {"k": "thousand", "thousand": "thousand", "m": "million", "mn": "million", "million": "million"}
_SCALES |= {"bn": "billion", "billion": "billion", "tn": "trillion", "trillion": "trillion"}
# `$12.50`, `£5m`, `$2.5 billion` (the scale word is read before the currency: "five million pounds").
_CURRENCY_RE = re.compile(rf"([$£€])\s?({_NUMBER})(?:\s?({'|'.join(_SCALES)})(?!\w))?", re.IGNORECASE)
# Starts only where a number starts, so a long run of digits is scanned once, not from every digit.
_PERCENT_RE = re.compile(rf"(?<![\d.,])(-?)({_NUMBER})\s?%")
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"(?<![\d,.$£€])\b(1[1-9]\d\d|20\d\d)\b(?![\d,%]|\.\d)")
_NUMBER_RE = re.compile(rf"(?<![\w.])(-?)({_NUMBER})(?![\w])")
_ABBREVIATION_RE = re.compile(r"(?<!\w)(" + "|".join(re.escape(a) for a in _ABBREVIATIONS) + r")(?=\s|$)")

# Digits glued to no other number-ish character on either side (not part of 1.2.3, 10/20, 12:30:45 ...).
_ALONE_BEFORE = r"(?<![\w.,:/$£€-])"
_ALONE_AFTER = r"(?![\w:/-]|[.,]\d)"
# `2024-03-05`, or `2024-03-05T14:30` (its `T` becomes a comma, the time is read by the time rule).
_ISO_DATE_RE = re.compile(
    rf"{_ALONE_BEFORE}([1-9]\d{{3}})-(\d\d)-(\d\d)(?:(T)(?=\d\d:\d\d{_ALONE_AFTER})|{_ALONE_AFTER})"
)
_NUMERIC_DATE_RE = re.compile(rf"{_ALONE_BEFORE}(\d{{1,2}})([/-])(\d{{1,2}})\2([1-9]\d{{3}}){_ALONE_AFTER}")
# `h:mm`, `h:mm am` or `h am` (also `pm`, `a.m.`, `PM`); the conditional at the end refuses a bare number.
_TIME_RE = re.compile(
    rf"{_ALONE_BEFORE}(?P<hour>\d{{1,2}})(?::(?P<minute>\d\d))?"
    r"(?:\s?(?P<half>[AaPp])\.?[Mm](?P<dot>\.)?)?(?(minute)|(?(half)|(?!)))"
    rf"{_ALONE_AFTER}"
)
_MONTH_SHORT = r"(?P<short>Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)(?:\.|(?!\w))"  # `Jan.`, `Sept`
_MONTH = rf"(?P<month>(?:{'|'.join(_MONTHS)})(?!\w)|{_MONTH_SHORT})"
_DAY = r"(?P<day>\d{1,2})(?i:st|nd|rd|th)?(?![\w%:]|[.,]\d)"
_DATE_YEAR = r"(?:,?\s(?P<year>[1-9]\d{3})(?![\w%]|[.,]\d))?"
_MONTH_DAY_RE = re.compile(rf"\b{_MONTH}\s{_DAY}{_DATE_YEAR}")
_DAY_MONTH_RE = re.compile(rf"(?<![\w.,$£€-]){_DAY}\s(?:of\s)?{_MONTH}{_DATE_YEAR}")
_UNIT_RE = re.compile(
    rf"(?<![\w.,$£€])(-?)({_NUMBER})"
    r"(?:\s?("
    + "|".join(re.escape(u) for u in sorted(set(_UNITS) - set(_SPACED_UNITS), key=len, reverse=True))
    + r")|\s("
    + "|".join(_SPACED_UNITS)
    + r"))(?!\w)"
)


_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _words(number: str, negative: str = "") -> str:
    """`3.50` → "three point five zero": decimals are read digit by digit, as written."""
    whole, _, fraction = number.replace(",", "").partition(".")
    words = num2words(int(whole))
    if fraction:
        words += " point " + " ".join(_DIGITS[int(d)] for d in fraction)
    return f"minus {words}" if negative else words


def _amount(symbol: str, number: str, scale: str | None = None) -> str:
    """`$12.50` → "twelve dollars and fifty cents"; `£1` → "one pound"; `£2.5m` → "two point five million
    pounds"."""
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    if scale:
        return f"{_words(number)} {_SCALES[scale.lower()]} {many}"
    whole, _, fraction = number.replace(",", "").partition(".")
    units = int(whole)
    words = f"{num2words(units)} {one if units == 1 else many}"
    cents = int((fraction + "00")[:2]) if fraction else 0
    if cents:
        words += f" and {num2words(cents)} {sub_one if cents == 1 else sub_many}"
    return words


def _date(month: int, day: int, year: str | None, day_first: bool = False) -> str:
    """(3, 5, "2024") → "March fifth, twenty twenty-four"; day first: "the fifth of March twenty twenty-four".
    Raises ValueError for a day the month does not have (a missing year allows 29 February)."""
    date(int(year or 2000), month, day)
    day_words = num2words(day, to="ordinal")
    if day_first:
        words = f"the {day_words} of {_MONTHS[month - 1]}"
        return f"{words} {num2words(int(year), to='year')}" if year else words
    words = f"{_MONTHS[month - 1]} {day_words}"
    return f"{words}, {num2words(int(year), to='year')}" if year else words


def _month_day(match: re.Match[str]) -> str:
    """`March 5th, 2024`, `Sept. 5` → "March fifth, twenty twenty-four", "September fifth"."""
    return _date(_MONTH_BY_PREFIX[match["month"][:3]], int(match["day"]), match["year"])


def _day_month(match: re.Match[str]) -> str:
    """`5 March 2024`, `5th of March` → "the fifth of March twenty twenty-four", "the fifth of March"."""
    if match["short"] and not match["year"]:
        return match.group(0)  # `5 Jan` alone: too likely something else
    words = _date(_MONTH_BY_PREFIX[match["month"][:3]], int(match["day"]), match["year"], day_first=True)
    after_the = re.search(r"(?:^|\W)the\s+$", match.string[max(0, match.start() - 8) : match.start()], re.IGNORECASE)
    return words.removeprefix("the ") if after_the else words


def _iso_date(match: re.Match[str]) -> str:
    """`2024-03-05` → "March fifth, twenty twenty-four"; `2024-03-05T` (a time follows) → "…, twenty twenty-four, "."""
    year, month, day, time_follows = match.groups()
    return _date(int(month), int(day), year) + (", " if time_follows else "")


def _numeric_date(match: re.Match[str]) -> str:
    """`25/12/2024` or `12/25/2024` → "December twenty-fifth, twenty twenty-four"; as written when both orders,
    or neither, make a valid date (`05/03/2024`)."""
    first, _, second, year = match.groups()
    readings = set()
    for month, day in ((int(first), int(second)), (int(second), int(first))):
        with suppress(ValueError):
            readings.add(_date(month, day, year))
    return readings.pop() if len(readings) == 1 else match.group(0)


def _minutes(minute: int) -> str:
    return f"oh {num2words(minute)}" if minute < 10 else num2words(minute)


def _time(match: re.Match[str]) -> str:
    """`14:30` → "fourteen thirty", `9:05` → "nine oh five", `10:00` → "ten o'clock", `2:30pm` → "two thirty P M";
    as written when it is no time of day (`25:61`, `13 pm`)."""
    hour, minute, half = int(match["hour"]), int(match["minute"] or 0), match["half"]
    if minute > 59:
        return match.group(0)
    if half:
        if not 1 <= hour <= 12:
            return match.group(0)
        words = num2words(hour) + (f" {_minutes(minute)}" if minute else "") + f" {half.upper()} M"
        # `a.m.` may also end the sentence: keep its full stop unless the sentence visibly goes on.
        goes_on = re.match(r"\s+[a-z]|[,;:!?]", match.string[match.end() :])
        return words + "." if match["dot"] and not goes_on else words
    if minute == 0 and hour in (0, 24):
        return "midnight"
    if hour > 23:
        return match.group(0)
    if hour == 0:
        return f"twelve {_minutes(minute)} A M"
    if minute:
        return f"{num2words(hour)} {_minutes(minute)}"
    return f"{num2words(hour)} o'clock" if hour <= 12 else f"{num2words(hour)} hundred"


def _unit(match: re.Match[str]) -> str:
    """`1 km` → "one kilometer", `2.5 km` → "two point five kilometers", `-3 °C` → "minus three degrees Celsius"."""
    negative, number, unit = match.group(1), match.group(2), match.group(3) or match.group(4)
    singular, plural = _UNITS[unit]
    return f"{_words(number, negative)} {singular if number == '1' else plural}"


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


# Read as a whole, before the rules below: each becomes words or stays exactly as written (an ambiguous date, an
# invalid time), and the rules below never see its digits.
_WHOLE_RULES = (
    (_ISO_DATE_RE, _spoken(_iso_date)),
    (_NUMERIC_DATE_RE, _spoken(_numeric_date)),
    (_TIME_RE, _spoken(_time)),
)


def is_mostly_latin(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= 0.5


def _normalize_rest(text: str) -> str:
    text = _ABBREVIATION_RE.sub(lambda m: _ABBREVIATIONS[m.group(1)], text)
    text = _CURRENCY_RE.sub(_spoken(lambda m: _amount(m.group(1), m.group(2), m.group(3))), text)
    text = _MONTH_DAY_RE.sub(_spoken(_month_day), text)
    text = _DAY_MONTH_RE.sub(_spoken(_day_month), text)
    text = _UNIT_RE.sub(_spoken(_unit), text)
    text = _PERCENT_RE.sub(_spoken(lambda m: f"{_words(m.group(2), m.group(1))} percent"), text)
    text = _ORDINAL_RE.sub(_spoken(lambda m: num2words(int(m.group(1)), to="ordinal")), text)
    text = _YEAR_RE.sub(_spoken(lambda m: num2words(int(m.group(1)), to="year")), text)
    return _NUMBER_RE.sub(_spoken(lambda m: _words(m.group(2), m.group(1))), text)


def _normalize(text: str, whole_rules: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...]) -> str:
    """The first whole rule's matches, converted; the text between them through the other rules."""
    if not whole_rules:
        return _normalize_rest(text)
    (pattern, convert), rest = whole_rules[0], whole_rules[1:]
    parts, end = [], 0
    for match in pattern.finditer(text):
        parts += [_normalize(text[end : match.start()], rest), convert(match)]
        end = match.end()
    return "".join([*parts, _normalize(text[end:], rest)])


def normalize_english(text: str) -> str:
    """`text` with numbers, dates, times, units, amounts and abbreviations spelled out; unchanged if it is not
    mostly Latin."""
    if not is_mostly_latin(text) and not re.fullmatch(r"[\W\d_]*", text):
        return text
    return _normalize(text, _WHOLE_RULES)
