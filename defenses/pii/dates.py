"""Calendar dates as people write them: read for dates of birth, generalised for k-anonymity."""

from __future__ import annotations

import datetime as dt
import re

MONTHS = {m: i for i, names in enumerate((
    ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
    ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
    ("oct", "october"), ("nov", "november"), ("dec", "december"),
), start=1) for m in names}

_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ][0-9:.+\-Z]*)?$")
_DMY = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_D_MON_Y = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?[ \-]([A-Za-z]{3,9})\.?,?[ \-](\d{4})$")
_MON_D_Y = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})$")

DATE_TEXT = (r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{4}|\d{1,2} [A-Za-z]{3,9}\.? \d{4}"
             r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{4})")
"""A date inside free text (for "born 12 March 1985", "DOB: 1985-03-12")."""

EARLIEST_BIRTH_YEAR = 1880


def _day(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_date(text: str, *, compact: bool = False) -> dt.date | None:
    """The date a cell holds (ISO, day-first or month-first with / . -, ``12 March 1985``,
    ``March 12, 1985``; ``19850312`` only with ``compact``), else None. An ambiguous
    ``03/04/1985`` reads day first."""
    s = text.strip()
    if len(s) < 8 or len(s) > 40:
        return None
    m = _ISO.match(s)
    if m:
        return _day(int(m[1]), int(m[2]), int(m[3]))
    m = _DMY.match(s)
    if m:
        a, b, year = int(m[1]), int(m[2]), int(m[3])
        return _day(year, b, a) or _day(year, a, b)
    if compact:
        m = _COMPACT.match(s)
        if m:
            return _day(int(m[1]), int(m[2]), int(m[3]))
    m = _D_MON_Y.match(s)
    if m and m[2].casefold() in MONTHS:
        return _day(int(m[3]), MONTHS[m[2].casefold()], int(m[1]))
    m = _MON_D_Y.match(s)
    if m and m[1].casefold() in MONTHS:
        return _day(int(m[3]), MONTHS[m[1].casefold()], int(m[2]))
    return None


def birth_date(text: str, *, compact: bool = False, today: dt.date | None = None) -> dt.date | None:
    """A date that can be someone's date of birth: a full date, not in the future, after 1880."""
    day = parse_date(text, compact=compact)
    if day is None:
        return None
    limit = today or dt.date.today()
    return day if EARLIEST_BIRTH_YEAR <= day.year and day <= limit else None
