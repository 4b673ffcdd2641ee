"""``guard data mask``: a copy of a table with its personal data redacted, pseudonymised,
partly masked or dropped, and its quasi-identifiers generalised until it is k-anonymous.

Two passes over the input, which is never changed: a scan (:mod:`.scan`) finds what to mask
and, with ``k``, counts the quasi-identifier combinations; the second pass writes the copy
atomically (:func:`guard.fsio.atomic_writer`), in the input's own format. Then the copy is
scanned again, and what that scan finds (nothing, when every finding was masked) and its k
are part of the result.

Strategies, applied to each finding (the span of the cell that holds it; the whole cell for
an Art. 9 category, and for every cell of a column named with ``columns``):

* ``redact``: a placeholder naming the kind, ``[EMAIL]``;
* ``hash``: a keyed token, ``pii_`` + 20 hex digits of HMAC-SHA256 (:class:`.masking.Pseudonymiser`);
* ``mask``: a partial mask, ``j***@***.org`` (:func:`.masking.partial`);
* ``drop``: the columns themselves are left out;
* ``generalize``: the quasi-identifiers are generalised to ``k`` (Datafly, :mod:`.anonymity`),
  and every other finding is redacted.

With ``k`` and any other strategy the quasi-identifiers are generalised as well. A
quasi-identifier that is itself a finding (a date of birth) is generalised at least one
level (to its month), so that no full date stays behind.

A CSV cell of the copy that a spreadsheet would run as a formula (it starts with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return and is not a number) gets a leading ``'``
(OWASP's advice on CSV injection), unless ``neutralize_formulas`` is off.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from guard.defenses.pii import anonymity
from guard.defenses.pii.detect import ColumnDetector
from guard.defenses.pii.masking import Pseudonymiser, partial, placeholder
from guard.defenses.pii.scan import ByteProgress, ColumnScan, ScanReport, scan_file
from guard.defenses.pii.table import (
    Batch,
    Table,
    open_table,
    parquet_module,
    scalar_text,
    table_format,
    text_of,
)
from guard.defenses.pii.vocab import MISSING
from guard.errors import ConfigError, DataError
from guard.fsio import atomic_writer
from guard.textsafe import visible

STRATEGIES = ("redact", "hash", "mask", "drop", "generalize")
_ALL_THE_WAY = 1 << 30
"""A level past the top of every hierarchy (:func:`.anonymity.generalise` stops at ``*``)."""
_FORMULA = re.compile(r"[=+\-@\t\r]")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
Transform = Callable[[str], str]


@dataclass(slots=True)
class MaskResult:
    """What the copy holds: what changed, and what a scan of it then finds."""

    out: Path
    strategy: str
    rows: int
    changed: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    before: ScanReport | None = None
    after: ScanReport | None = None
    generalisation: anonymity.Generalisation | None = None
    formulas_neutralised: int = 0

    def to_dict(self) -> dict[str, Any]:
        g = self.generalisation
        return {
            "schema": "guard.data-mask/1",
            "out": str(self.out),
            "strategy": self.strategy,
            "rows": self.rows,
            "cells_changed": dict(self.changed),
            "columns_dropped": list(self.dropped),
            "formulas_neutralised": self.formulas_neutralised,
            "generalised": None if g is None else {
                "k": g.k, "quasi_identifiers": list(g.columns),
                "levels": dict(zip(g.columns, g.levels, strict=True)), "suppressed_rows": g.suppressed_rows},
            "before": None if self.before is None else _summary(self.before),
            "after": None if self.after is None else _summary(self.after),
        }


def _summary(report: ScanReport) -> dict[str, Any]:
    full = report.to_dict()
    keys = ("pii_findings", "special_category_findings", "columns_with_pii", "kinds", "quasi_identifiers",
            "k_anonymity", "unique_share", "rows_scanned")
    return {key: full[key] for key in keys}


def mask_file(path: Path, out: Path, *, strategy: str, key: bytes | None = None,
              columns: Sequence[str] | None = None, quasi_identifiers: Sequence[str] | None = None,
              k: int | None = None, max_suppression: float = 0.05, neutralize_formulas: bool = True,
              overwrite: bool = False, progress: ByteProgress | None = None) -> MaskResult:
    """Write the masked copy of ``path`` to ``out`` and scan it; see the module docstring."""
    path, out = Path(path), Path(out)
    _check_paths(path, out, overwrite)
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "generalize" and k is None:
        raise ConfigError("--strategy generalize needs --k N, the k the table must reach")
    if strategy == "hash" and key is None:
        raise ConfigError("--strategy hash needs --key FILE (make one with: guard keygen -o FILE)")
    if k is not None and k < 2:
        raise ConfigError(f"--k must be at least 2, got {k}")
    if not 0.0 <= max_suppression <= 1.0:
        raise ConfigError(f"--max-suppression must lie in [0, 1], got {max_suppression}")
    shown = progress or (lambda done, total: None)
    before = scan_file(path, quasi_identifiers=quasi_identifiers, keep_qi_values=k is not None,
                       progress=lambda done, total: shown(done // 2, total))
    if columns is not None:
        missing = [c for c in columns if c not in before.columns]
        if missing:
            raise DataError(f"{visible(str(path))}: --columns names no column {visible(missing[0])!r}; "
                            f"columns are {', '.join(visible(c) for c in before.columns[:12])}")
    plan = _Plan(before, strategy, key, columns, k, max_suppression)
    result = MaskResult(out, strategy, before.rows, before=before, generalisation=plan.generalisation,
                        dropped=sorted(plan.drop))
    writer = {"csv": _write_csv, "jsonl": _write_jsonl, "parquet": _write_parquet}[before.format]
    with open_table(path) as table, atomic_writer(out) as fh:
        writer(_Progressing(table, shown), fh, plan, result, neutralize_formulas)
    result.changed = {c: n for c, n in plan.changed.items() if n}
    after_qi = [c for c in (plan.generalisation.columns if plan.generalisation else before.quasi_identifiers)
                if c not in plan.drop]
    result.after = scan_file(out, quasi_identifiers=after_qi)
    return result


def _check_paths(path: Path, out: Path, overwrite: bool) -> None:
    if table_format(out) != table_format(path):
        raise ConfigError(f"-o {visible(str(out))}: write the copy in the input's format "
                          f"(.{table_format(path)}), as {visible(path.name)} is")
    refuse_input(path, out, "write the copy to another file")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ConfigError(f"-o {visible(str(out))} exists; pass --force to replace it")


def refuse_input(path: Path, out: Path, advice: str) -> None:
    """Refuse an output path that is the input file: the same name, a link to it, or a hard link."""
    if not (out.exists() or out.is_symlink()):
        return
    same = out.resolve() == path.resolve()
    if not same:
        try:
            same = os.path.samefile(out, path)
        except OSError:
            same = False
    if same:
        raise ConfigError(f"-o {visible(str(out))} is the input file: Guard never changes its input; "
                          f"{advice}")


class _Progressing:
    """A table whose batches report the second half of the progress (the first is the scan)."""

    def __init__(self, table: Table, progress: ByteProgress) -> None:
        self.table = table
        self.progress = progress

    @property
    def columns(self) -> list[str]:
        return self.table.columns

    @property
    def parquet_schema(self) -> Any:
        return self.table.parquet_schema

    @property
    def header_row(self) -> list[str]:
        return self.table.header_row

    def batches(self) -> Iterator[Batch]:
        for batch in self.table.batches():
            yield batch
            self.progress((self.table.size + self.table.position) // 2, self.table.size)


class _Plan:
    """Per column: how its cells change. Per row: how its quasi-identifiers generalise."""

    def __init__(self, report: ScanReport, strategy: str, key: bytes | None, columns: Sequence[str] | None,
                 k: int | None, max_suppression: float) -> None:
        self.changed: dict[str, int] = {}
        named = list(columns) if columns is not None else None
        found = [c.name for c in report.columns_with_pii]
        targets = named if named is not None else found
        self.drop: set[str] = set(targets) if strategy == "drop" else set()
        self.generalisation: anonymity.Generalisation | None = None
        if k is not None:
            qi = [c for c in report.quasi_identifiers if c not in self.drop]
            self.generalisation = _generalise(report, qi, k, max_suppression)
        qi_set = set(self.generalisation.columns) if self.generalisation else set()
        replace = _replacer("redact" if strategy in ("generalize", "drop") else strategy, key)
        self.transforms: dict[str, Transform] = {}
        if strategy != "drop":
            for name in targets:
                if name in qi_set:
                    continue
                scan = next((c for c in report.scans if c.name == name), None)
                detector = ColumnDetector(name, confirmed=scan.confirmed if scan else frozenset())
                whole = named is not None
                self.transforms[name] = self._counted(name, _cell_transform(detector, replace, whole))

    def _counted(self, name: str, fn: Transform) -> Transform:
        self.changed[name] = 0

        def counted(value: str) -> str:
            new = fn(value)
            if new != value:
                self.changed[name] += 1
            return new

        return counted

    def qi_row(self, values: Sequence[str]) -> tuple[str, ...]:
        if self.generalisation is None:
            return tuple(values)
        return self.generalisation.apply([v.strip() for v in values])


def _generalise(report: ScanReport, qi: list[str], k: int,
                max_suppression: float) -> anonymity.Generalisation:
    if not qi:
        raise ConfigError("--k needs quasi-identifiers: none were found; name them with --quasi-identifiers")
    counts = report.qi_values
    if counts is None:  # pragma: no cover - mask_file always asks the scan for them
        raise DataError("the scan kept no quasi-identifier values")
    positions = [report.quasi_identifiers.index(c) for c in qi]
    projected: Counter[tuple[str, ...]] = Counter()
    for values, n in counts.items():
        projected[tuple(values[j] for j in positions)] += n
    kinds = [report.column(c).quasi_identifier for c in qi]
    minimum = [_least_level(report.column(c)) for c in qi]
    return anonymity.generalise(qi, kinds, projected, k, max_suppression, minimum)


def _least_level(column: ColumnScan) -> int:
    """How far a quasi-identifier must be generalised whatever k asks: a date of birth at least
    to its month; any other personal or Art. 9 data all the way to ``*`` (an age band of a
    phone number, or a health status in a class, still gives it away); anything else not at all."""
    if column.special or set(column.kinds) - {"date_of_birth"}:
        return _ALL_THE_WAY
    return 1 if column.kinds else 0


def _replacer(strategy: str, key: bytes | None) -> Callable[[str, str], str]:
    if strategy == "hash":
        if key is None:
            raise ConfigError("--strategy hash needs --key FILE")
        return Pseudonymiser(key).token
    if strategy == "mask":
        return partial
    return lambda kind, _text: placeholder(kind)


def _cell_transform(detector: ColumnDetector, replace: Callable[[str, str], str], whole: bool) -> Transform:
    def transform(value: str) -> str:
        stripped = value.strip()
        if not stripped or stripped.casefold() in MISSING:
            return value
        if whole:
            return replace("value", stripped)
        result = detector.cell(value)
        if not result.hits:
            return value
        special = next((h for h in result.hits if h.special), None)
        if special is not None:
            return replace(special.kind, stripped)
        pieces, at = [], 0
        for hit in result.hits:
            pieces.append(stripped[at:hit.start])
            pieces.append(replace(hit.kind, stripped[hit.start:hit.end]))
            at = hit.end
        pieces.append(stripped[at:])
        return "".join(pieces)

    return transform


# -- writers, one per format -----------------------------------------------------------------------


def _neutral(value: str) -> bool:
    """Whether a spreadsheet would take the cell as a value, not a formula: it does not start
    (after spaces, which some importers trim) with ``= + - @``, a tab or a CR, or it is a number."""
    start = value.lstrip(" \u00a0")
    return not _FORMULA.match(start) or bool(_NUMBER.fullmatch(start))


def _write_csv(table: _Progressing, fh: IO[bytes], plan: _Plan, result: MaskResult, neutralize: bool) -> None:
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    header_written = False
    qi_at: list[int] = []
    for batch in table.batches():
        columns = table.columns
        if not header_written:
            keep = [j for j, c in enumerate(columns) if c not in plan.drop]
            fns = [plan.transforms.get(columns[j]) for j in keep]
            if plan.generalisation:
                qi_at = [columns.index(c) for c in plan.generalisation.columns]
            writer.writerow([table.header_row[j] for j in keep])
            header_written = True
        for row in batch.rows:
            cells = [c if isinstance(c, str) else "\n".join(c) for c in row]
            if qi_at:
                for j, value in zip(qi_at, plan.qi_row([cells[j] for j in qi_at]), strict=True):
                    cells[j] = value
            out = [cells[j] if fn is None else fn(cells[j]) for j, fn in zip(keep, fns, strict=True)]
            if neutralize:
                for i, value in enumerate(out):
                    if not _neutral(value):
                        out[i] = "'" + value
                        result.formulas_neutralised += 1
            writer.writerow(out)
    if not header_written:  # a header and no rows
        names = zip(table.header_row, table.columns, strict=True)
        writer.writerow([raw for raw, c in names if c not in plan.drop])
    text.flush()
    text.detach()


def _write_jsonl(table: _Progressing, fh: IO[bytes], plan: _Plan, result: MaskResult,
                 neutralize: bool) -> None:
    qi = plan.generalisation.columns if plan.generalisation else ()
    for batch in table.batches():
        index = {c: j for j, c in enumerate(table.columns)}
        for row, record in zip(batch.rows, batch.raw, strict=True):
            replace: dict[str, str] = {}
            if qi:
                values = [_joined(row[index[c]]) if c in index and index[c] < len(row) else "" for c in qi]
                replace = dict(zip(qi, plan.qi_row(values), strict=True))
            masked = _walk(record, "", plan, replace)
            _fill_missing(masked, replace)
            fh.write((json.dumps(masked, ensure_ascii=False) + "\n").encode("utf-8"))


def _joined(cell: str | tuple[str, ...]) -> str:
    return "\n".join(cell) if isinstance(cell, tuple) else cell


def _walk(value: Any, key: str, plan: _Plan, replace: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            full = f"{key}.{name}" if key else str(name)
            if full in plan.drop or f"{full}[]" in plan.drop:
                continue
            out[name] = _walk(item, full, plan, replace)
        return out
    if isinstance(value, list):
        items = f"{key}[]"
        if items in replace and not any(isinstance(item, dict | list) for item in value):
            # a list quasi-identifier was generalised as one value, its items joined
            new = replace[items]
            return value if new == "\n".join(scalar_text(item) for item in value).strip() else new
        return [_walk(item, items, plan, replace) for item in value]
    if key in replace:
        new = replace[key]
        return value if new == scalar_text(value).strip() else new
    fn = plan.transforms.get(key)
    if fn is None or value is None:
        return value
    text = scalar_text(value)
    new = fn(text)
    return value if new == text else new


def _fill_missing(record: dict[str, Any], replace: dict[str, str]) -> None:
    """Write a generalised quasi-identifier that the record lacks (``*``, as its class counted
    it), so the copy holds the classes the generalisation made."""
    for key, new in replace.items():
        if not new or "[]" in key or key in record:
            continue
        parts = key.split(".")
        node: Any = record
        for part in parts[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(part, {})
        else:
            if isinstance(node, dict) and parts[-1] not in node:
                node[parts[-1]] = new


def _write_parquet(table: _Progressing, fh: IO[bytes], plan: _Plan, result: MaskResult,
                   neutralize: bool) -> None:
    import pyarrow as pa

    pq = parquet_module()
    writer = None
    qi = plan.generalisation.columns if plan.generalisation else ()
    try:
        for batch in table.batches():
            arrays, names = _parquet_arrays(batch, table.columns, plan, qi, pa)
            record_batch = pa.RecordBatch.from_arrays(arrays, names=names)
            if writer is None:
                writer = pq.ParquetWriter(fh, record_batch.schema)
            writer.write_batch(record_batch.cast(writer.schema) if record_batch.schema != writer.schema
                               else record_batch)
        if writer is None:
            schema = table.parquet_schema
            kept = [f for f in schema if f.name not in plan.drop]
            fields = [pa.field(f.name, masked_type(f.type, pa) if f.name in plan.transforms else pa.string())
                      if f.name in plan.transforms or f.name in qi else f for f in kept]
            writer = pq.ParquetWriter(fh, pa.schema(fields))
    finally:
        if writer is not None:
            writer.close()


def _parquet_arrays(batch: Batch, columns: list[str], plan: _Plan, qi: Sequence[str],
                    pa: Any) -> tuple[list[Any], list[str]]:
    raw = batch.raw
    qi_values: list[tuple[str, ...]] = []
    if qi:
        at = [columns.index(c) for c in qi]
        qi_values = [plan.qi_row([_joined(row[j]) for j in at]) for row in batch.rows]
    arrays, names = [], []
    for j, name in enumerate(columns):
        if name in plan.drop:
            continue
        column = raw.column(j)
        if name in qi:
            position = list(qi).index(name)
            originals = column.to_pylist()
            values = [None if v is None and not g[position] else g[position]
                      for v, g in zip(originals, qi_values, strict=True)]
            arrays.append(pa.array(values, type=pa.string()))
        elif name in plan.transforms:
            fn = plan.transforms[name]
            if _nests(column.type, pa):  # each leaf masked as the scan read it, the nesting kept
                masked = [_mask_leaves(v, fn) for v in column.to_pylist()]
                arrays.append(pa.array(masked, type=masked_type(column.type, pa)))
            else:
                out = []
                for v in column.to_pylist():
                    cell = text_of(v)
                    out.append(None if v is None else fn(cell if isinstance(cell, str) else "\n".join(cell)))
                arrays.append(pa.array(out, type=pa.string()))
        else:
            arrays.append(column)
        names.append(name)
    return arrays, names


def _nests(arrow_type: Any, pa: Any) -> bool:
    """A struct or list type built only of structs, lists and scalars (not maps or unions)."""
    t = pa.types
    if t.is_struct(arrow_type):
        return all(_nests(f.type, pa) or _scalar(f.type, pa) for f in arrow_type)
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return _nests(arrow_type.value_type, pa) or _scalar(arrow_type.value_type, pa)
    return False


def _scalar(arrow_type: Any, pa: Any) -> bool:
    t = pa.types
    return not (t.is_nested(arrow_type) or t.is_dictionary(arrow_type))


def masked_type(arrow_type: Any, pa: Any) -> Any:
    """The type of a masked column: its nesting kept, every leaf a string (a masked value is
    text, and a leaf left as it was is written as the scan read it)."""
    if _nests(arrow_type, pa):
        if pa.types.is_struct(arrow_type):
            return pa.struct([pa.field(f.name, masked_type(f.type, pa), f.nullable) for f in arrow_type])
        return pa.list_(masked_type(arrow_type.value_type, pa))
    return pa.string()


def _mask_leaves(value: Any, fn: Transform) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {name: _mask_leaves(item, fn) for name, item in value.items()}
    if isinstance(value, list):
        return [_mask_leaves(item, fn) for item in value]
    return fn(scalar_text(value))
