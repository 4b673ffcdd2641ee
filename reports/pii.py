"""Personal data in the training data, in the reports: a table per scanned file and the
re-identification figures, in words a data-protection officer can file.

Evidence ``data.pii_scan``, one entry per file: ``params.path``, ``columns`` (a list of
per-column summaries, or a mapping of column name to summary: kinds, cells, shares, masked
examples), ``quasi_identifiers``, ``sensitive``, ``kinds``; metrics ``pii_findings``,
``special_category_findings``, ``rows_scanned``, ``columns_with_pii``, ``k_anonymity``,
``unique_share`` and, where a sensitive column was named, ``l_diversity``.

Column names, kinds and examples come from the user's file: every one is shown as text (the
template escapes it and spells out control and bidi characters). The examples arrive masked
by the scanner; nothing here unmasks or re-derives them. A summary's keys are read under the
names a scanner may reasonably use: Guard's scanner writes ``name``, ``cells`` (all the
column's cells), ``pii_cells``, ``special_category_cells``, ``masked_cells``,
``quasi_identifier``, and ``kinds`` / ``special_categories`` as kind → ``{count, fraction,
examples, schemes}``; a flat ``kinds`` list with ``count``, ``fraction`` and
``masked_examples`` reads too. A scanner that adds or renames a key loses a cell, never the
report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .evasion import FlagView, Measured
from .membership import Shown, shown
from .svg import shortened
from .text import count, metric_value, params_text, pct, plural, text

PII_PROBE = "data.pii_scan"
COLUMNS_SHOWN = 60
"""Columns listed per file; the rest are counted (report.json has them all)."""
EXAMPLES_SHOWN = 3
EXAMPLE_MAX = 48
SHOWN_PARAMS = ("path", "columns", "quasi_identifiers", "sensitive", "kinds")
NAME_KEYS = ("column", "name")
KIND_KEYS = ("kinds", "kind", "types")
SPECIAL_KIND_KEYS = ("special_categories",)
COUNT_KEYS = ("pii_cells", "count", "findings")
SPECIAL_COUNT_KEYS = ("special_category_cells",)
SHARE_KEYS = ("fraction", "share")
EXAMPLE_KEYS = ("masked_examples", "examples", "masked", "samples")
INTRO = (
    "Personal data found in the training data, file by file and column by column. The examples "
    "are masked by the scanner: none is a real value. Removing names is not enough to make data "
    "anonymous: under GDPR Recital 26 a person is identifiable by any means reasonably likely to "
    "be used, singling them out included, so a row that is unique on a few ordinary facts (age, "
    "postcode, gender: the quasi-identifiers) identifies its person to anyone who knows those "
    "facts, and every other value in the row with them. The re-identification figures below "
    "measure that."
)


@dataclass(frozen=True, slots=True)
class ColumnRow:
    column: str
    kinds: str
    cells: str
    share: str
    examples: str
    special: bool
    quasi_identifier: str


@dataclass(frozen=True, slots=True)
class RiskFigure:
    """A re-identification figure (k, unique share, l) with what it means for this table."""

    label: str
    value: Shown
    meaning: str


@dataclass(frozen=True, slots=True)
class ScanView:
    path: str
    summary: str
    facts: tuple[tuple[str, str], ...]
    columns: tuple[ColumnRow, ...]
    columns_left_out: str
    risk: tuple[RiskFigure, ...]
    settings: str
    flags: tuple[FlagView, ...]


@dataclass(frozen=True, slots=True)
class PiiView:
    intro: str
    files: tuple[ScanView, ...]


def pii_view(measured: Sequence[Measured]) -> PiiView | None:
    """The view of every scanned file, or ``None`` when the audit scanned none."""
    scans = [m for m in measured if m.probe == PII_PROBE]
    return PiiView(INTRO, tuple(scan_view(m) for m in scans)) if scans else None


def _first(summary: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((summary[k] for k in keys if summary.get(k) is not None), None)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _words(value: Any) -> str:
    """A list or a mapping of counts (``{"email": 3}``) as ``email (3), phone (1)``."""
    if isinstance(value, Mapping):
        return ", ".join(f"{text(k)} ({count(v)})" if _number(v) is not None else text(k)
                         for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    return "" if value is None else text(value)


def _kinds(value: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """Kinds as (name, summary): from the scanner's mapping of kind to ``{count, fraction,
    examples, schemes}``, a mapping of kind to count, a list of names, or one name."""
    if isinstance(value, Mapping):
        return [(text(k), v if isinstance(v, Mapping) else {"count": v}) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [(text(v), {}) for v in value if v is not None and v != ""]
    return [] if value is None or value == "" else [(text(value), {})]


def _kind_words(name: str, summary: Mapping[str, Any]) -> str:
    """``national_id (de.idnr, nl.bsn)``: a kind with the schemes its values matched."""
    schemes = summary.get("schemes")
    listed = _words(list(schemes) if isinstance(schemes, Mapping) else schemes)
    return f"{name} ({listed})" if listed else name


def _share(summary: Mapping[str, Any], kinds: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The column's share of rows, or each kind's where the scanner gives them per kind."""
    whole = _number(_first(summary, SHARE_KEYS))
    if whole is not None:
        return pct(whole, 1)
    shares = [(name, _number(_first(k, SHARE_KEYS))) for name, k in kinds]
    known = [(name, v) for name, v in shares if v is not None]
    if len(known) == 1:
        return pct(known[0][1], 1)
    return ", ".join(f"{name} {pct(v, 1)}" for name, v in known) or "—"


def _examples(summary: Mapping[str, Any], kinds: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Up to :data:`EXAMPLES_SHOWN` masked examples: the column's own list, else each kind's
    (named by their kind when there are several kinds)."""
    own = _first(summary, EXAMPLE_KEYS)
    if own is not None:
        items = [text(v) for v in (own if isinstance(own, (list, tuple)) else [own])]
    else:
        items = []
        for name, k in kinds:
            found = _first(k, EXAMPLE_KEYS)
            found = found if isinstance(found, (list, tuple)) else [] if found is None else [found]
            items += [f"{name}: {text(v)}" if len(kinds) > 1 else text(v) for v in found]
    shown_items = [shortened(v, EXAMPLE_MAX) for v in items[:EXAMPLES_SHOWN]]
    more = f" (+{len(items) - EXAMPLES_SHOWN} more)" if len(items) > EXAMPLES_SHOWN else ""
    return " · ".join(shown_items) + more


def _cells(summary: Mapping[str, Any]) -> str:
    """``1,180 of 1,200``, then the special-category cells (when the column has both kinds) and
    those the scanner found already masked."""
    found, special = _number(_first(summary, COUNT_KEYS)), _number(_first(summary, SPECIAL_COUNT_KEYS))
    total, masked = _number(summary.get("cells")), _number(summary.get("masked_cells"))
    main = found or special
    if not main:  # none found (a quasi-identifier column), or a count that is not a number
        raw = _first(summary, COUNT_KEYS)
        shown_cells = "—" if raw is None or _number(raw) is not None else text(raw)
    else:
        shown_cells = count(main) + (f" of {count(total)}" if total is not None else "")
    if found and special:
        shown_cells += f"; {count(special)} special-category"
    return shown_cells + (f"; {count(masked)} already masked" if masked else "")


def _summaries(columns: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(name, summary) for each column, from a list of summaries or a mapping name → summary."""
    if isinstance(columns, Mapping):
        return [(text(name), s if isinstance(s, Mapping) else {"kinds": s}) for name, s in columns.items()]
    out: list[tuple[str, Mapping[str, Any]]] = []
    for item in columns if isinstance(columns, (list, tuple)) else ():
        if isinstance(item, Mapping):
            name = _first(item, NAME_KEYS)
            out.append((text(name) if name is not None else "unnamed column", item))
        elif item is not None:
            out.append((text(item), {}))
    return out


def _column_rows(columns: Any) -> tuple[list[ColumnRow], int]:
    """The columns with something found (and the count of those where nothing was)."""
    rows, clean = [], 0
    for name, summary in _summaries(columns):
        kinds = _kinds(_first(summary, KIND_KEYS))
        special = _kinds(_first(summary, SPECIAL_KIND_KEYS))
        quasi = summary.get("quasi_identifier")
        found = _number(_first(summary, COUNT_KEYS)) or _number(_first(summary, SPECIAL_COUNT_KEYS))
        if not kinds and not special and not quasi and not found:
            clean += 1
            continue
        every = kinds + special
        words = "; ".join(_kind_words(k, s) for k, s in kinds)
        words = "; ".join(w for w in (words, "; ".join(_kind_words(k, s) for k, s in special)) if w)
        rows.append(ColumnRow(
            column=name, kinds=words or "—", cells=_cells(summary), share=_share(summary, every),
            examples=_examples(summary, every),
            special=bool(special) or bool(_number(_first(summary, SPECIAL_COUNT_KEYS)))
            or summary.get("special_category") is True or summary.get("special") is True,
            quasi_identifier="" if not quasi else "named" if quasi == "given" else text(quasi),
        ))
    return rows, clean


def scan_view(m: Measured) -> ScanView:
    rows, clean = _column_rows(m.params.get("columns"))
    left_out = []
    if len(rows) > COLUMNS_SHOWN:
        left_out.append(f"{plural(len(rows) - COLUMNS_SHOWN, 'more column')} with personal data, "
                        "listed in report.json")
    if clean:
        left_out.append(f"{plural(clean, 'column')} where the scan found nothing")
    return ScanView(
        path=text(m.params.get("path", "unnamed file")),
        summary=_summary(m),
        facts=_facts(m),
        columns=tuple(rows[:COLUMNS_SHOWN]),
        columns_left_out="; ".join(left_out),
        risk=_risk(m),
        settings=params_text({k: v for k, v in m.params.items() if k not in SHOWN_PARAMS}),
        flags=tuple(FlagView(code, code.replace("_", " "), text(m.params.get("path", m.probe)), detail)
                    for code, detail in m.flags),
    )


def _counted(m: Measured, name: str) -> str:
    value = metric_value(m.metrics, name)
    return "not measured" if value is None else count(value)


def _summary(m: Measured) -> str:
    """``2,429 cells with personal data in 4 columns (email, phone), 1,200 of them special-category``."""
    kinds = _words(m.params.get("kinds"))
    return (f"{_counted(m, 'pii_findings')} cells with personal data in {_counted(m, 'columns_with_pii')} "
            f"columns{f' ({kinds})' if kinds else ''}, {_counted(m, 'special_category_findings')} of them "
            f"special-category (GDPR Art. 9), in {_counted(m, 'rows_scanned')} rows")


def _facts(m: Measured) -> tuple[tuple[str, str], ...]:
    facts = [("Rows scanned", _counted(m, "rows_scanned")),
             ("Cells with personal data", _counted(m, "pii_findings")),
             ("Of them special-category data (GDPR Art. 9)", _counted(m, "special_category_findings")),
             ("Columns with personal data", _counted(m, "columns_with_pii"))]
    kinds = _words(m.params.get("kinds"))
    if kinds:
        facts.append(("Kinds found", kinds))
    return tuple(facts)


def _quasi(m: Measured) -> str:
    return _words(m.params.get("quasi_identifiers")) or "none named or detected"


def _risk(m: Measured) -> tuple[RiskFigure, ...]:
    quasi = _quasi(m)
    figures = [RiskFigure("Quasi-identifiers", Shown(quasi), "The columns an outsider may already know "
                          "about a person; the figures below are computed on them.")]
    k = metric_value(m.metrics, "k_anonymity")
    if k is None:
        meaning = "Without it, how identifiable the rows are is unknown."
    elif k <= 1:
        meaning = (f"At least one row is the only one with its combination of {quasi}: whoever knows "
                   "those facts about its person finds their row, and everything else in it.")
    else:
        meaning = (f"Every combination of {quasi} is shared by at least {count(k)} rows, so none is "
                   "singled out by those columns alone (other columns may still link rows to people).")
    figures.append(RiskFigure("k-anonymity", _figure(m, "k_anonymity"), meaning))
    unique = metric_value(m.metrics, "unique_share")
    if unique is None:
        meaning = "The share of rows that single out one person is unknown."
    elif unique > 0:
        meaning = ("Each such row singles out one person: under GDPR Recital 26 it is personal data "
                   "even with every name and number removed.")
    else:
        meaning = "No row is unique on its quasi-identifiers."
    figures.append(RiskFigure("Rows unique on them", _figure(m, "unique_share"), meaning))
    sensitive = _words(m.params.get("sensitive"))
    l_div = metric_value(m.metrics, "l_diversity")
    if sensitive or "l_diversity" in m.metrics:
        column = sensitive or "the sensitive column"
        if l_div is None:
            meaning = f"How well {column} is hidden within groups of alike rows is unknown."
        elif l_div <= 1:
            meaning = (f"In at least one group of rows that share quasi-identifiers, every row has the "
                       f"same {column}: knowing that a person is in that group discloses it, without "
                       "finding their row.")
        else:
            meaning = (f"In every group of rows that share quasi-identifiers, {column} takes at least "
                       f"{count(l_div)} distinct values, so being in a group does not disclose it.")
        figures.append(RiskFigure(f"l-diversity of {column}", _figure(m, "l_diversity"), meaning))
    return tuple(figures)


def _figure(m: Measured, name: str) -> Shown:
    """k and l as whole numbers (``3``), the unique share as a rate; a missing one as not
    measured, with the reason the evidence gives."""
    if metric_value(m.metrics, name) is not None:
        return shown(m, name) if name == "unique_share" else Shown(count(metric_value(m.metrics, name)))
    flags = [detail or code.replace("_", " ") for code, detail in m.flags]
    if not m.params.get("quasi_identifiers"):
        reason = "no quasi-identifiers were named or detected"
    else:
        reason = "; ".join(flags) if flags else "not in this evidence"
    return Shown("not measured", missing=reason)
