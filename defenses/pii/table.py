"""Tables read in batches of rows, in bounded memory: CSV, JSON lines and Parquet.

Every cell comes out as text, as the detectors read it: a JSON or Parquet number as Python
writes it, ``null`` as an empty cell, a nested object flattened into dotted column names
(``address.city``), and the items of a list as a tuple of texts under ``name[]``. The
original records travel with each batch (:attr:`Batch.raw`), so masking can write them back
with only the masked values changed.

Bad input is one :class:`~guard.errors.DataError` line, never a traceback: a file that is not
a regular file or is over ``data_bytes``, an empty file, text that is not UTF-8, a CSV row with
more or fewer cells than the header, a field over :data:`MAX_FIELD` characters, a line over
:data:`MAX_LINE`, a JSON line that is not an object, a file that is not Parquet.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from guard.errors import DataError
from guard.fsio import NotRegularFile, open_regular
from guard.limits import describe, human_bytes, limit
from guard.textsafe import visible

Cell = str | tuple[str, ...]
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
MAX_LINE = 4 << 20
"""Characters in one line of a CSV or JSON-lines file (as :mod:`guard.data` allows)."""
MAX_FIELD = csv.field_size_limit()
"""Characters in one CSV field: Python's csv module default (131,072), left as it is."""
BATCH_ROWS = 2048


@dataclass(slots=True)
class Batch:
    """Rows of cells, aligned with :attr:`Table.columns` as they stood when it was read (a
    JSON-lines file may name new columns later; earlier rows lack them), and the records."""

    rows: list[list[Cell]]
    raw: Any = None
    """The records as read: None for CSV (``rows`` are the records), a list of dicts for JSON
    lines, a ``pyarrow.RecordBatch`` for Parquet."""


@dataclass(slots=True)
class Table:
    """An open table file: its columns, and its rows batch by batch (:meth:`batches`, once)."""

    path: Path
    format: str
    size: int
    handle: IO[bytes]
    columns: list[str] = field(default_factory=list)
    header_row: list[str] = field(default_factory=list)
    """A CSV file's header as written (``columns`` names blank and repeated ones apart)."""
    position: int = 0
    """Bytes read so far (for progress)."""
    max_columns: int = field(default_factory=lambda: limit("table_columns"))
    _index: dict[str, int] = field(default_factory=dict)
    _parquet: Any = None

    def batches(self) -> Iterator[Batch]:
        if self.format == "csv":
            return self._csv()
        if self.format == "jsonl":
            return self._jsonl()
        return self._parquet_batches()

    def problem(self, text: str) -> DataError:
        return DataError(f"{visible(str(self.path))}: {text}")

    # -- CSV ------------------------------------------------------------------------------------

    def _lines(self, first: int = 1) -> Iterator[str]:
        number = first - 1
        cap = limit("data_bytes")
        while line := self.handle.readline(MAX_LINE + 1):
            number += 1
            self.position += len(line)
            if len(line) > MAX_LINE:
                raise self.problem(f"line {number} is longer than {MAX_LINE} bytes")
            if self.position > cap:
                raise self.problem(f"grew past the {describe('data_bytes')} while it was read")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self.problem(f"line {number}: not UTF-8 text (byte {exc.start + 1} of the line)"
                                   ) from None
            yield text.removeprefix("\ufeff") if number == 1 else text

    def _csv(self) -> Iterator[Batch]:
        reader = csv.reader(self._lines(), strict=True)  # strict: a quote left open is an error
        started = 1  # the line where the record being read starts
        try:
            header = next(reader, None)
            if header is None:
                raise self.problem("empty file, expected a header row")
            if not header:
                raise self.problem("line 1 is blank, expected a header row")
            self._set_columns(header)
            width = len(header)
            rows: list[list[Cell]] = []
            started = reader.line_num + 1
            for row in reader:
                started = reader.line_num + 1
                if not row:
                    continue  # a blank line
                if len(row) != width:
                    raise self.problem(f"line {reader.line_num} has {len(row)} cells, the header has {width}")
                rows.append(cast("list[Cell]", row))  # a list of str is a row of cells
                if len(rows) == BATCH_ROWS:
                    yield Batch(list(rows))
                    rows.clear()
            if rows:
                yield Batch(rows)
        except csv.Error as exc:
            line = reader.line_num
            detail = str(exc).split("\n", 1)[0]
            if "field larger than field limit" in detail:
                detail = f"a field is longer than {MAX_FIELD} characters"
            elif "unexpected end of data" in detail:
                line = started
                detail = "a quoted field opened on this line is never closed"
            elif "expected after" in detail:
                detail = f"{detail}: text after a closing quote"
            raise self.problem(f"line {line}: cannot read CSV ({detail})") from None

    def _set_columns(self, header: list[str]) -> None:
        self.header_row = list(header)
        seen: dict[str, int] = {}
        for j, raw in enumerate(header):
            name = raw.strip() or f"(column {j + 1})"
            seen[name] = seen.get(name, 0) + 1
            self._add(name if seen[name] == 1 else f"{name}#{seen[name]}")

    def _add(self, name: str) -> int:
        at = self._index.get(name)
        if at is None:
            if len(self.columns) == self.max_columns:
                raise self.problem(f"more than {self.max_columns} columns; Guard scans tables up to that "
                                   "width (GUARD_LIMIT_TABLE_COLUMNS raises it)")
            at = self._index[name] = len(self.columns)
            self.columns.append(name)
        return at

    # -- JSON lines -----------------------------------------------------------------------------

    def _jsonl(self) -> Iterator[Batch]:
        from guard.serialization import parse_json

        rows: list[list[Cell]] = []
        records: list[dict[str, Any]] = []
        seen_any = False
        for number, line in enumerate(self._lines(), start=1):
            if not line.strip():
                continue
            seen_any = True
            try:
                record = parse_json(line)
            except ValueError as exc:
                raise self.problem(f"line {number}: not JSON ({str(exc).splitlines()[0][:120]})") from None
            if not isinstance(record, dict):
                kind = type(record).__name__
                raise self.problem(f"line {number}: a JSON {kind}, expected an object per line")
            flat: dict[str, list[str]] = {}
            flatten(record, "", flat)
            row: list[Cell] = [""] * len(self.columns)
            for key, values in flat.items():
                at = self._add(key)
                if at >= len(row):
                    row.extend([""] * (at + 1 - len(row)))
                row[at] = values[0] if len(values) == 1 and "[]" not in key else tuple(values)
            rows.append(row)
            records.append(record)
            if len(rows) == BATCH_ROWS:
                yield Batch(list(rows), list(records))
                rows.clear()
                records.clear()
        if not seen_any:
            raise self.problem("empty file, expected one JSON object per line")
        if rows:
            yield Batch(rows, records)

    # -- Parquet --------------------------------------------------------------------------------

    @property
    def parquet_schema(self) -> Any:
        """The Arrow schema of a Parquet table (None for the other formats)."""
        return None if self._parquet is None else self._parquet.schema_arrow

    def open_parquet(self) -> Any:
        pq = parquet_module()
        try:
            self._parquet = pq.ParquetFile(self.handle)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise self.problem(f"not a Parquet file ({str(exc).splitlines()[0][:160]})") from None
        for name in self._parquet.schema_arrow.names:
            self._add(name)
        return self._parquet

    def _parquet_batches(self) -> Iterator[Batch]:
        import pyarrow as pa

        pf = self._parquet if self._parquet is not None else self.open_parquet()
        total_rows = max(1, pf.metadata.num_rows)
        done = 0
        try:
            for record_batch in pf.iter_batches(batch_size=BATCH_ROWS):
                columns = [[text_of(v) for v in record_batch.column(j).to_pylist()]
                           for j in range(record_batch.num_columns)]
                rows = [list(r) for r in zip(*columns, strict=True)] if columns else []
                done += record_batch.num_rows
                self.position = min(self.size, self.size * done // total_rows)
                yield Batch(rows, record_batch)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise self.problem(f"cannot read Parquet ({str(exc).splitlines()[0][:160]})") from None


def parquet_module() -> Any:
    """``pyarrow.parquet``, or the one-line error that says how to install it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("Parquet files need pyarrow: pip install guard-ml[parquet]") from None
    return pq


def table_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{visible(str(path))}: unsupported table format {visible(path.suffix) or '(none)'}; "
                        "use .csv, .jsonl (JSON lines) or .parquet")
    return fmt


@contextmanager
def open_table(path: Path) -> Iterator[Table]:
    """The table at ``path``, opened without blocking and checked to be a regular file."""
    path = Path(path)
    fmt = table_format(path)
    shown = visible(str(path))
    try:
        fd, info = open_regular(path)
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file") from None
    except NotRegularFile as exc:
        raise DataError(f"{shown}: is {exc.kind}, not a regular file") from None
    except OSError as exc:
        raise DataError(f"{shown}: cannot open ({exc.strerror or exc})") from None
    try:
        if info.st_size > limit("data_bytes"):
            raise DataError(f"{shown}: {human_bytes(info.st_size)} on disk, larger than the "
                            f"{describe('data_bytes')}")
        if info.st_size == 0:
            raise DataError(f"{shown}: empty file")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        table = Table(path, fmt, info.st_size, handle)
        if fmt == "parquet":
            table.open_parquet()
        try:
            yield table
        except OSError as exc:
            raise DataError(f"{shown}: cannot read ({exc.strerror or exc})") from None


def known_columns(path: Path) -> list[str] | None:
    """The columns of a CSV table (its header, and its first batch read to check it) or a
    Parquet table (its schema); None for JSON lines, whose keys any line may add. Raises the
    :class:`~guard.errors.DataError` a scan would for a file that cannot be read."""
    with open_table(path) as table:
        if table.format == "jsonl":
            return None
        if table.format == "csv":
            next(table.batches(), None)
        return list(table.columns)


def flatten(value: Any, key: str, out: dict[str, list[str]]) -> None:
    """Leaves of a JSON value under dotted keys; list items under ``key[]``."""
    if isinstance(value, dict):
        for name, item in value.items():
            flatten(item, f"{key}.{name}" if key else str(name), out)
    elif isinstance(value, list):
        for item in value:
            flatten(item, f"{key}[]", out)
        if not value:
            out.setdefault(f"{key}[]", [])
    else:
        out.setdefault(key or "(value)", []).append(scalar_text(value))


def scalar_text(value: Any) -> str:
    """A JSON or Parquet scalar as the detectors read it (binary values as their UTF-8 text,
    or empty when they are not UTF-8)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return _binary_text(bytes(value))
    return str(value)


def _binary_text(data: bytes) -> str:
    """A binary value as text when it is UTF-8 (Parquet written by Hive, Impala or an old Spark
    stores strings as binary without saying so), else empty: nothing the detectors can read."""
    if len(data) > MAX_FIELD:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return ""


def text_of(value: Any) -> Cell:
    """A value as the detectors read it: a scalar as text, a nested one as a tuple of texts."""
    if isinstance(value, dict):
        flat: dict[str, list[str]] = {}
        flatten(value, "", flat)
        return tuple(v for values in flat.values() for v in values)
    if isinstance(value, list | tuple):
        items: list[str] = []
        for item in value:
            text = text_of(item)
            items.extend(text if isinstance(text, tuple) else (text,))
        return tuple(items)
    return scalar_text(value)
