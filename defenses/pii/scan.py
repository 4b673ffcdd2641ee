"""Scan a table for personal data, column by column and cell by cell, in one streaming pass.

Memory stays bounded whatever the file's size: rows are read in batches (:mod:`.table`),
each column keeps counts and at most :data:`EXAMPLES` masked examples per kind, and the
re-identification measures keep one 64-bit hash per row (8 bytes a row for the
quasi-identifiers, 8 more for a sensitive column; :mod:`.anonymity`).

Quasi-identifiers are the columns given, else those whose header names an age, a birth year
or date of birth, a postcode or a sex or gender, and those whose first batch of values is
mostly genders or postcodes (at least 90% of at least 5 values).
"""

from __future__ import annotations

import re
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.defenses.pii import anonymity, ids, names, vocab
from guard.defenses.pii.detect import CARD, PERSON_NAME, ColumnDetector, Hit, bare_candidates, known_name
from guard.defenses.pii.masking import partial
from guard.defenses.pii.table import Cell, Table, open_table
from guard.errors import ConfigError, DataError
from guard.textsafe import visible

EXAMPLES = 3
ByteProgress = Callable[[int, int], None]
_NUMBER_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|[+-]?inf(?:inity)?)"
_NUMERIC_BLOCK = re.compile(rf"(?:(?>[ \t]*(?:{_NUMBER_TEXT})?[ \t]*)(?:\n|\Z))*+")
"""A block of cells (joined by newlines) that are all numbers or empty: checked in one pass."""
_BARE_LINE = re.compile(r"^\d{9,19}$", re.MULTILINE)


def _quiet(done: int, total: int) -> None:
    """No progress shown."""


@dataclass(slots=True)
class KindCount:
    count: int = 0
    examples: list[str] = field(default_factory=list)
    schemes: Counter[str] = field(default_factory=Counter)
    tried: int = 0

    def add(self, kind: str, text: str, scheme: str = "", n: int = 1) -> None:
        self.count += n
        if scheme:
            self.schemes[scheme] += n
        if len(self.examples) < EXAMPLES and self.tried < 64:  # distinct examples, not forever
            self.tried += 1
            shown = partial(kind, text)
            if shown not in self.examples:
                self.examples.append(shown)

    def to_dict(self, rows: int) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "fraction": round(self.count / rows, 6) if rows else 0.0,
                               "examples": list(self.examples)}
        if self.schemes:
            out["schemes"] = dict(sorted(self.schemes.items()))
        return out


@dataclass(slots=True)
class ColumnScan:
    """What one column held."""

    name: str
    detector: ColumnDetector
    cells: int = 0
    pii_cells: int = 0
    special_cells: int = 0
    masked: int = 0
    kinds: dict[str, KindCount] = field(default_factory=dict)
    special: dict[str, KindCount] = field(default_factory=dict)
    quasi_identifier: str | None = None
    bare_candidates: Counter[str] = field(default_factory=Counter)
    bare_valid: Counter[str] = field(default_factory=Counter)
    bare_combos: Counter[frozenset[str]] = field(default_factory=Counter)
    bare_examples: dict[str, list[str]] = field(default_factory=dict)
    bare_rejected: set[str] = field(default_factory=set)
    confirmed: frozenset[str] = frozenset()
    pending_names: KindCount = field(default_factory=KindCount)
    """Name-shaped values under a header that may mean a name (``name``, ``customer``)."""
    pending_known: int = 0
    """How many of them hold a common given or family name (:mod:`.names`)."""
    pending_cells: int = 0
    """Cells holding them and no other personal data."""

    def feed(self, cells: Sequence[Cell]) -> None:
        plain = [c for c in cells if isinstance(c, str)]
        d = self.detector
        hinted = d.special or d.dob_hint or d.phone_hint or d.card_hint or d.id_hint
        if len(plain) == len(cells) and not hinted:
            block = "\n".join(plain)
            if _NUMERIC_BLOCK.fullmatch(block):
                self.cells += sum(1 for c in plain if c.strip())
                for m in _BARE_LINE.finditer(block):
                    self._bare(m.group(), counted=False)
                return
        for cell in cells:
            self._cell(cell)

    def _cell(self, cell: Cell) -> None:
        if isinstance(cell, str):
            result = self.detector.cell(cell)
            if result.bare is not None:
                self._bare(cell.strip())
            elif result.pending_name:
                self.cells += 1
                self.pending_cells += 1
                self._pending(cell.strip())
            elif result.hits:
                self.cells += 1
                pii = special = False
                stripped = cell.strip()
                for hit in result.hits:
                    self._hit(hit, stripped)
                    pii = pii or not hit.special
                    special = special or hit.special
                self.pii_cells += pii
                self.special_cells += special
            elif result.masked:
                self.cells += 1
                self.masked += 1
            elif cell and not cell.isspace():
                self.cells += 1
            return
        items = cell
        pii = special = masked = pending = False
        counted = False
        for text in items:
            result = self.detector.cell(text)
            if result.bare is not None:
                self._bare(text.strip(), counted=not counted)
                counted = True
                continue
            if not counted and text.strip():
                self.cells += 1
                counted = True
            masked = masked or result.masked
            stripped = text.strip()
            if result.pending_name:
                pending = True
                self._pending(stripped)
            for hit in result.hits:
                self._hit(hit, stripped)
                pii = pii or not hit.special
                special = special or hit.special
        self.pii_cells += pii
        self.special_cells += special
        self.pending_cells += pending and not pii
        self.masked += masked and not (pii or special or pending)

    def _pending(self, text: str) -> None:
        self.pending_names.add(PERSON_NAME, text)
        self.pending_known += known_name(text)

    def _hit(self, hit: Hit, text: str) -> None:
        table = self.special if hit.special else self.kinds
        entry = table.get(hit.kind)
        if entry is None:
            entry = table[hit.kind] = KindCount()
        entry.add(hit.kind, text[hit.start:hit.end], hit.detail)

    def _bare(self, digits: str, counted: bool = True) -> None:
        if counted:
            self.cells += 1
        length = len(digits)
        candidates = bare_candidates(length, card=self.detector.bare_card)
        keys = [k for k in candidates if k not in self.bare_rejected]
        if not keys:
            return
        result = self.detector.cell(digits)
        if result.hits:  # a scheme this column already confirmed, or its header names
            for hit in result.hits:
                self._hit(hit, digits)
            self.pii_cells += 1
            return
        if result.bare is None:
            return
        for key in keys:
            self.bare_candidates[key] += 1
            trial_over = self.bare_candidates[key] == ids.BARE_TRIAL
            if trial_over and self.bare_valid[key] < ids.BARE_SHARE * ids.BARE_TRIAL:
                self.bare_rejected.add(key)
        if result.bare.valid:
            self.bare_combos[result.bare.valid] += 1
            for key in result.bare.valid:
                self.bare_valid[key] += 1
                shown = self.bare_examples.setdefault(key, [])
                if len(shown) < EXAMPLES and partial(_kind_of(key), digits) not in shown:
                    shown.append(partial(_kind_of(key), digits))

    def finish(self) -> None:
        """Count the bare identifiers (:mod:`.ids`) and the pending names (:mod:`.names`) that
        the column as a whole confirms."""
        confirmed = frozenset(k for k, n in self.bare_valid.items() if k not in self.bare_rejected
                              and n >= ids.BARE_MIN and n >= ids.BARE_SHARE * self.bare_candidates[k])
        pending = self.pending_names
        if self.pending_known and self.pending_known >= names.CONFIRM_SHARE * pending.count:
            entry = self.kinds.setdefault(PERSON_NAME, KindCount())
            entry.count += pending.count
            for shown in pending.examples:
                if len(entry.examples) < EXAMPLES and shown not in entry.examples:
                    entry.examples.append(shown)
            self.pii_cells += self.pending_cells
            confirmed |= {PERSON_NAME}
        self.confirmed = confirmed
        if not confirmed - {PERSON_NAME}:
            return
        for combo, n in self.bare_combos.items():
            chosen = sorted(combo & confirmed)
            if not chosen:
                continue
            key = chosen[0]
            kind = _kind_of(key)
            entry = self.kinds.setdefault(kind, KindCount())
            entry.count += n
            if kind == "national_id":
                entry.schemes[key] += n
            for shown in self.bare_examples.get(key, []):
                if len(entry.examples) < EXAMPLES and shown not in entry.examples:
                    entry.examples.append(shown)
            self.pii_cells += n

    def flagged(self) -> bool:
        return bool(self.kinds or self.special or self.quasi_identifier)

    def to_dict(self, rows: int) -> dict[str, Any]:
        return {
            "name": self.name,
            "cells": self.cells,
            "pii_cells": self.pii_cells,
            "special_category_cells": self.special_cells,
            "kinds": {k: v.to_dict(rows) for k, v in sorted(self.kinds.items())},
            "special_categories": {k: v.to_dict(rows) for k, v in sorted(self.special.items())},
            "quasi_identifier": self.quasi_identifier,
            "masked_cells": self.masked,
        }


def _kind_of(key: str) -> str:
    return CARD if key == CARD else "national_id"


@dataclass(slots=True)
class ScanReport:
    """Everything one scan found: per column, in total, and how identifiable the rows are."""

    path: Path
    format: str
    rows: int
    columns: list[str]
    scans: list[ColumnScan]
    quasi_identifiers: list[str]
    sensitive: str | None
    anonymity: anonymity.Anonymity
    seconds: float
    qi_values: Counter[tuple[str, ...]] | None = None
    """Each distinct quasi-identifier tuple and its rows, when asked for (for generalising)."""

    @property
    def pii_findings(self) -> int:
        return sum(c.pii_cells for c in self.scans)

    @property
    def special_category_findings(self) -> int:
        return sum(c.special_cells for c in self.scans)

    @property
    def columns_with_pii(self) -> list[ColumnScan]:
        return [c for c in self.scans if c.pii_cells or c.special_cells]

    def kinds(self) -> dict[str, int]:
        """Cells per kind over the whole table (Art. 9 categories by their names)."""
        total: Counter[str] = Counter()
        for c in self.scans:
            total.update({k: v.count for k, v in c.kinds.items()})
            total.update({k: v.count for k, v in c.special.items()})
        return dict(sorted(total.items()))

    def column(self, name: str) -> ColumnScan:
        for scan in self.scans:
            if scan.name == name:
                return scan
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        a = self.anonymity
        return {
            "schema": "guard.data-scan/1",
            "path": str(self.path),
            "format": self.format,
            "rows_scanned": self.rows,
            "columns_scanned": len(self.columns),
            "pii_findings": self.pii_findings,
            "special_category_findings": self.special_category_findings,
            "columns_with_pii": len(self.columns_with_pii),
            "kinds": self.kinds(),
            "columns": [c.to_dict(self.rows) for c in self.scans if c.flagged()],
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": self.sensitive,
            "k_anonymity": a.k,
            "unique_share": round(a.unique_rows / self.rows, 6) if self.rows else 0.0,
            "unique_rows": a.unique_rows,
            "equivalence_classes": a.classes,
            "l_diversity": a.l,
            "seconds": round(self.seconds, 3),
        }


class _Scanner:
    def __init__(self, table: Table, quasi: Sequence[str] | None, sensitive: str | None,
                 keep_qi_values: bool) -> None:
        if sensitive is not None and quasi is not None and sensitive in quasi:
            raise ConfigError(f"--sensitive {visible(sensitive)!r} is also among the --quasi-identifiers: "
                              "within a class of equal quasi-identifiers it has one value, so its "
                              "l-diversity is 1 by definition; name it in one of the two")
        self.table = table
        self.given_qi = list(quasi) if quasi is not None else None
        self.sensitive = sensitive
        self.scans: list[ColumnScan] = []
        self.qi: list[str] | None = None
        self.qi_hashes = array("q")
        self.sensitive_hashes = array("q")
        self.qi_values: Counter[tuple[str, ...]] | None = Counter() if keep_qi_values else None
        self.rows = 0

    def feed(self, rows: list[list[Cell]]) -> None:
        columns = self.table.columns
        while len(self.scans) < len(columns):
            name = columns[len(self.scans)]
            self.scans.append(ColumnScan(name, ColumnDetector(name)))
        width = len(columns)
        for row in rows:
            if len(row) < width:
                row.extend([""] * (width - len(row)))
        if self.qi is None:
            self.qi = self._choose_qi(rows)
        by_column = list(zip(*rows, strict=True)) if rows else []
        for scan, cells in zip(self.scans, by_column, strict=False):
            scan.feed(cells)
        self._anonymity(rows)
        self.rows += len(rows)

    def _choose_qi(self, rows: list[list[Cell]]) -> list[str]:
        if self.given_qi is not None:
            if self.table.format != "jsonl":
                _check_named(self.table, self.given_qi, "--quasi-identifiers")
            return self.given_qi
        chosen = []
        for j, scan in enumerate(self.scans):
            if scan.name == self.sensitive:  # what an attacker learns, not what they know
                continue
            kind = quasi_identifier_kind(scan.name, [r[j] for r in rows])
            if kind is not None:
                scan.quasi_identifier = kind
                chosen.append(scan.name)
        return chosen

    def _anonymity(self, rows: list[list[Cell]]) -> None:
        index = {name: j for j, name in enumerate(self.table.columns)}
        at = [index.get(name) for name in self.qi or ()]
        s_at = index.get(self.sensitive) if self.sensitive else None
        for row in rows:
            values = tuple("" if j is None else _joined(row[j]) for j in at)
            self.qi_hashes.append(hash(tuple(vocab.normal(v) for v in values)))
            if self.qi_values is not None:
                self.qi_values[tuple(v.strip() for v in values)] += 1
            if self.sensitive:
                value = vocab.normal(_joined(row[s_at])) if s_at is not None else ""
                self.sensitive_hashes.append(hash(value))

    def report(self, seconds: float) -> ScanReport:
        columns = self.table.columns
        if self.given_qi is not None:
            _check_named(self.table, self.given_qi, "--quasi-identifiers")
            for scan in self.scans:
                if scan.name in self.given_qi:
                    scan.quasi_identifier = quasi_identifier_kind(scan.name, []) or "given"
        if self.sensitive is not None:
            _check_named(self.table, [self.sensitive], "--sensitive")
        for scan in self.scans:
            scan.finish()
        measured = anonymity.measure(self.qi_hashes, self.sensitive_hashes if self.sensitive else None)
        return ScanReport(self.table.path, self.table.format, self.rows, list(columns), self.scans,
                          list(self.qi or self.given_qi or []), self.sensitive, measured, seconds,
                          self.qi_values)


def _joined(cell: Cell) -> str:
    return "\n".join(cell) if isinstance(cell, tuple) else cell


def _check_named(table: Table, names: Sequence[str], option: str) -> None:
    known = set(table.columns)
    for name in names:
        if name not in known:
            shown = ", ".join(visible(c) for c in table.columns[:12])
            more = f" and {len(table.columns) - 12} more" if len(table.columns) > 12 else ""
            raise DataError(f"{visible(str(table.path))}: {option} names no column {visible(name)!r}; "
                            f"columns are {shown}{more}")


def quasi_identifier_kind(name: str, sample: Sequence[Cell]) -> str | None:
    """``age``, ``birth_year``, ``date_of_birth``, ``postcode`` or ``sex`` when the header or
    the sample of values says the column is one, else None."""
    h = vocab.header(name)
    if h.has(*vocab.QI_AGE) and not h.has(*vocab.NOT_AGE_WORDS):
        return "age"
    if h.has(*vocab.QI_BIRTH_YEAR) or h.has_all("birth", "year") or h.has_all("year", "birth"):
        return "birth_year"
    if h.has(*vocab.DOB_WORDS) or h.has_all("birth", "date") or h.has_all("date", "birth"):
        return "date_of_birth"
    if h.has(*vocab.QI_POSTCODE) or h.has_all("post", "code") or h.has_all("zip", "code"):
        return "postcode"
    if h.has(*vocab.QI_SEX):
        return "sex"
    values = [vocab.normal(c) for c in sample if isinstance(c, str) and c.strip()]
    if len(values) < 5:
        return None
    if len(set(values)) >= 2 and sum(v in vocab.GENDER_VALUES for v in values) >= 0.9 * len(values):
        return "sex"
    if sum(bool(vocab.UK_POSTCODE.match(v) or vocab.US_ZIP4.match(v)) for v in values) >= 0.9 * len(values):
        return "postcode"
    return None


def scan_file(path: Path, *, quasi_identifiers: Sequence[str] | None = None, sensitive: str | None = None,
              progress: ByteProgress = _quiet, keep_qi_values: bool = False) -> ScanReport:
    """Scan the table at ``path`` (CSV, JSON lines, Parquet) in one pass."""
    start = time.perf_counter()
    with open_table(Path(path)) as table:
        scanner = _Scanner(table, quasi_identifiers, sensitive, keep_qi_values)
        for batch in table.batches():
            scanner.feed(batch.rows)
            progress(table.position, table.size)
        if scanner.qi is None:  # a header and no rows
            scanner.feed([])
        progress(table.size, table.size)
        return scanner.report(time.perf_counter() - start)
