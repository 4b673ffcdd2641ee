"""How identifiable the rows are from their quasi-identifiers, and generalising them until
every row hides among at least k.

GDPR Recital 26 makes data personal while a person is identifiable "by means reasonably
likely to be used"; age, postcode and sex alone single out most people (Sweeney 2000:
87% of Americans by 5-digit ZIP, sex and date of birth). The measures:

* **k-anonymity** (Samarati and Sweeney 1998): the size of the smallest equivalence class,
  the rows sharing one combination of quasi-identifier values. k = 1: someone is unique.
* **unique share**: the fraction of rows alone in their class.
* **l-diversity** (Machanavajjhala et al. 2007, distinct l): the fewest distinct values of a
  sensitive column within one class. l = 1: knowing someone's class gives away the value.

Values compare with case and surrounding spaces ignored. Classes are counted exactly over a
64-bit hash of each row's values (8 bytes a row instead of the values; two different
combinations share a hash with probability below 10^-5 at ten million distinct rows).

Generalising is Datafly (Sweeney 1997): while more rows sit in classes smaller than k than
the suppression budget allows, coarsen the quasi-identifier with the most distinct values by
one level of its hierarchy (an age 34 → 30-34 → 30-39 → 20-39 → *; a date 1985-03-12 →
1985-03 → 1985 → 1980s → *; a postcode SW1A 1AA → SW1A 1A* → ... → *; a category → *); then
suppress (every quasi-identifier ``*``) the rows still in small classes.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from guard.defenses.pii.dates import parse_date
from guard.defenses.pii.vocab import normal
from guard.errors import DataError

SUPPRESSED = "*"


@dataclass(frozen=True, slots=True)
class Anonymity:
    k: int
    unique_rows: int
    classes: int
    l: int | None  # noqa: E741  (l-diversity's own name)


def measure(qi_hashes: array[int], sensitive_hashes: array[int] | None = None) -> Anonymity:
    """k, unique rows, classes and (with a sensitive column) distinct l, from one hash per row."""
    q = np.frombuffer(qi_hashes, dtype=np.int64) if len(qi_hashes) else np.empty(0, np.int64)
    n = len(q)
    if n == 0:
        return Anonymity(0, 0, 0, None if sensitive_hashes is None else 0)
    _, counts = np.unique(q, return_counts=True)
    l_value = None
    if sensitive_hashes is not None:
        s = np.frombuffer(sensitive_hashes, dtype=np.int64)
        order = np.lexsort((s, q))
        qs, ss = q[order], s[order]
        new_class = np.ones(n, dtype=bool)
        new_class[1:] = qs[1:] != qs[:-1]
        new_pair = new_class.copy()
        new_pair[1:] |= ss[1:] != ss[:-1]
        distinct = np.bincount(np.cumsum(new_class) - 1, weights=new_pair)
        l_value = int(distinct.min())
    return Anonymity(int(counts.min()), int((counts == 1).sum()), len(counts), l_value)


def measure_values(rows: Sequence[Sequence[str]], sensitive: Sequence[str] | None = None) -> Anonymity:
    """:func:`measure` over rows of quasi-identifier values held in memory."""
    q = array("q", (hash(tuple(normal(v) for v in row)) for row in rows))
    s = None if sensitive is None else array("q", (hash(normal(v)) for v in sensitive))
    return measure(q, s)


# -- generalisation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """How one quasi-identifier coarsens, level by level; level :attr:`top` is ``*``."""

    kind: str  # "number", "date", "code" or "category"
    top: int
    step: float = 0.0

    def apply(self, value: str, level: int) -> str:
        if level <= 0:
            return value
        if level >= self.top or not value.strip():
            return SUPPRESSED
        if self.kind == "number":
            return _band(value, self.step * 2 ** (level - 1))
        if self.kind == "date":
            day = parse_date(value)
            if day is None:
                return SUPPRESSED
            shown = (f"{day.year:04d}-{day.month:02d}", f"{day.year:04d}", f"{day.year // 10 * 10}s")
            return shown[level - 1]
        if self.kind == "code":
            text = value.strip()
            keep = len(text) - level
            return f"{text[:keep]}*" if keep > 0 else SUPPRESSED
        return SUPPRESSED


def _band(value: str, width: float) -> str:
    try:
        x = float(value)
    except ValueError:
        return SUPPRESSED
    if not math.isfinite(x):
        return SUPPRESSED
    lo = math.floor(x / width) * width
    if float(width).is_integer():
        return f"{int(lo)}-{int(lo + width - 1)}"
    return f"[{lo:g}, {lo + width:g})"


def hierarchy_for(kind: str | None, values: Sequence[str]) -> Hierarchy:
    """The hierarchy that fits a column of quasi-identifier ``kind`` holding ``values``."""
    present = [v.strip() for v in values if v.strip()]
    numbers = [_number(v) for v in present]
    finite = [x for x in numbers if x is not None]
    mostly_numbers = bool(present) and len(finite) >= 0.9 * len(present) and kind != "postcode"
    if kind in ("age", "birth_year") or mostly_numbers:
        span = (max(finite) - min(finite)) if finite else 0.0
        step = 5.0 if kind in ("age", "birth_year") else _nice(span / 32)
        return Hierarchy("number", 5, step)
    dates = sum(parse_date(v) is not None for v in present)
    if kind == "date_of_birth" or (present and dates >= 0.9 * len(present)):
        return Hierarchy("date", 4)
    if kind == "postcode":
        return Hierarchy("code", max((len(v) for v in present), default=1))
    return Hierarchy("category", 1)


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _nice(x: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at least ``x`` (a band width people read)."""
    if x <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(x))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= x)


@dataclass(frozen=True, slots=True)
class Generalisation:
    """The levels Datafly chose, the classes it suppressed, and the k the result has."""

    columns: tuple[str, ...]
    hierarchies: tuple[Hierarchy, ...]
    levels: tuple[int, ...]
    suppressed: frozenset[tuple[str, ...]]
    suppressed_rows: int
    k: int
    rows: int

    def apply(self, values: Sequence[str]) -> tuple[str, ...]:
        out = tuple(h.apply(v, lvl) for h, v, lvl in zip(self.hierarchies, values, self.levels, strict=True))
        if self.suppressed and tuple(normal(v) for v in out) in self.suppressed:
            return (SUPPRESSED,) * len(out)
        return out


def generalise(columns: Sequence[str], kinds: Sequence[str | None], counts: Counter[tuple[str, ...]], k: int,
               max_suppression: float, min_levels: Sequence[int] | None = None) -> Generalisation:
    """Datafly over the distinct quasi-identifier tuples and their row counts; each column
    starts at its level in ``min_levels`` (0 by default)."""
    rows = sum(counts.values())
    if rows == 0:
        raise DataError("the table has no rows to make k-anonymous")
    if k > rows:
        raise DataError(f"--k {k} is more than the table's {rows} rows: no table of {rows} rows is "
                        f"{k}-anonymous")
    hierarchies = tuple(hierarchy_for(kind, [t[j] for t in counts]) for j, kind in enumerate(kinds))
    starts = min_levels or [0] * len(columns)
    levels = [min(level, h.top) for level, h in zip(starts, hierarchies, strict=True)]
    budget = math.floor(max_suppression * rows)
    while True:
        classes: Counter[tuple[str, ...]] = Counter()
        for values, n in counts.items():
            steps = zip(hierarchies, values, levels, strict=True)
            classes[tuple(normal(h.apply(v, lvl)) for h, v, lvl in steps)] += n
        chosen = _suppression(classes, k, budget)
        if chosen is not None:
            suppressed, n_suppressed = chosen
            final: Counter[tuple[str, ...]] = Counter()
            for key, n in classes.items():
                final[(SUPPRESSED,) * len(columns) if key in suppressed else key] += n
            return Generalisation(tuple(columns), hierarchies, tuple(levels), frozenset(suppressed),
                                  n_suppressed, min(final.values()), rows)
        open_ = [j for j in range(len(columns)) if levels[j] < hierarchies[j].top]
        if not open_:  # every value is "*": one class of every row, and rows >= k
            return Generalisation(tuple(columns), hierarchies, tuple(levels), frozenset(), 0, rows, rows)
        distinct = [len({key[j] for key in classes}) for j in range(len(columns))]
        levels[max(open_, key=lambda j: distinct[j])] += 1


def _suppression(classes: Counter[tuple[str, ...]], k: int,
                 budget: int) -> tuple[set[tuple[str, ...]], int] | None:
    """The classes to suppress so that every class left has at least k rows, within
    ``budget`` rows; None when that takes more. Suppressed rows become one class (every value
    ``*``), which joins the rows already all ``*``, and must reach k too: whole classes, the
    smallest first, are added to it until it does."""
    top = (SUPPRESSED,) * len(next(iter(classes)))
    small = {key for key, n in classes.items() if n < k}
    total = sum(classes[key] for key in small)
    merged = total + (classes.get(top, 0) if top not in small else 0)
    if total and merged < k:
        for key, n in sorted(classes.items(), key=lambda item: item[1]):
            if merged >= k:
                break
            if key not in small and key != top:
                small.add(key)
                total += n
                merged += n
    if total > budget or (total and merged < k):
        return None
    return small, total
