"""Row digests of the data files Guard reads row by row: CSV, ``.npz`` and ``.npy``.

A row's digest is SHA-256 over a definition anyone can recompute:

* CSV, each data row after the header (Python's :mod:`csv`, Excel dialect): the row's cells as
  a compact JSON array of strings, UTF-8 (``json.dumps(cells, ensure_ascii=False,
  separators=(",", ":"))``). Values count, not their spelling: quoting that leaves a value as it
  was, and line endings (LF, CRLF, CR), change no row digest (the file's own SHA-256 still
  changes). Blank lines are not rows; a BOM is dropped; bytes that are not UTF-8 are kept as they
  are (``surrogateescape``), so any CSV can be recorded.
* ``.npy``, and each array of an ``.npz``: ``np.ascontiguousarray(a[i]).tobytes()`` in the stored
  dtype, for each index ``i`` along axis 0; and one SHA-256 over the whole array in C order (which
  alone covers a 0-d array). Object arrays are refused: they could run code when read.

Reading streams (a line, or a few MiB of an array, at a time), so memory holds 32 bytes per row,
not the data; every size is checked against :mod:`guard.limits` first.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import struct
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

import numpy as np

from guard.errors import DataError
from guard.limits import describe, human_bytes, limit
from guard.npz import first_line, plain, read_npy_header

DIGEST = 32
_MAX_CSV_LINE = 4 << 20  # characters in one physical line, as guard.data reads CSV
_CHUNK = 8 << 20  # bytes of an array read at a time
_MAX_MEMBERS = 4096
_MAX_DIRECTORY = 16 << 20
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error,
               NotImplementedError, RuntimeError)


@dataclass(frozen=True, slots=True)
class CsvRows:
    """A CSV file's header digest (None for a file without one) and its rows' digests, packed
    32 bytes each; ``lines[i]`` is the line where data row ``i`` starts (1-based)."""

    header: bytes | None
    digests: bytes
    lines: array[int]
    header_line: int = 1


@dataclass(frozen=True, slots=True)
class ArrayRows:
    """One array: its name in the archive (``""`` for a ``.npy``), dtype, shape, SHA-256 over
    its C-order bytes, and its rows' digests packed 32 bytes each."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str
    digests: bytes


def max_rows() -> int:
    """The most row digests one manifest can hold within ``manifest_bytes`` (base64 in JSON)."""
    return max(1, limit("manifest_bytes") * 3 // 4 // DIGEST)


def _too_many(path: Path, rows: int) -> DataError:
    return DataError(f"{path}: {rows} rows would not fit a manifest within the "
                     f"{describe('manifest_bytes')}")


# -- CSV -----------------------------------------------------------------------------------------


def cells_digest(cells: list[str]) -> bytes:
    """The digest of one CSV row (see the module docstring): exactly ``json.dumps(cells,
    ensure_ascii=False, separators=(",", ":"))``, built from json's own string encoder,
    which is twice as fast as calling ``dumps`` once a row."""
    text = "[" + ",".join(map(encode_basestring, cells)) + "]"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def csv_rows(path: Path, handle: IO[bytes]) -> CsvRows:
    """Digest the header and every data row of the CSV open as ``handle``."""
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(_bounded_lines(path, text))
    header: bytes | None = None
    header_line, previous, cap = 1, 0, max_rows()
    digests, lines = bytearray(), array("q")
    try:
        for cells in reader:
            start, previous = previous + 1, reader.line_num
            if not cells:
                continue  # a blank line
            if header is None:
                header, header_line = cells_digest(cells), start
                continue
            if len(lines) >= cap:
                raise _too_many(path, len(lines) + 1)
            digests += cells_digest(cells)
            lines.append(start)
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: cannot read CSV ({first_line(exc)})") from None
    finally:
        text.detach()  # the handle is closed by its opener
    return CsvRows(header, bytes(digests), lines, header_line)


def _bounded_lines(path: Path, text: IO[str]) -> Iterator[str]:
    number = 0
    while line := text.readline(_MAX_CSV_LINE + 1):
        number += 1
        if len(line) > _MAX_CSV_LINE:
            raise DataError(f"{path}: line {number} is longer than {_MAX_CSV_LINE} characters")
        yield line


# -- arrays --------------------------------------------------------------------------------------


def npy_rows(path: Path, handle: IO[bytes]) -> ArrayRows:
    """Digest the one array of the ``.npy`` file open as ``handle``."""
    handle.seek(0)
    return _array_rows(path, "", handle)


def npz_rows(path: Path, handle: IO[bytes]) -> list[ArrayRows]:
    """Digest every array of the ``.npz`` open as ``handle``, in archive order."""
    try:
        _check_directory(path, handle)
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            declared = sum(info.file_size for info in infos)
            if declared > limit("array_bytes"):
                raise DataError(f"{path}: its arrays inflate to {human_bytes(declared)}, over the "
                                f"{describe('array_bytes')}")
            seen: set[str] = set()
            out: list[ArrayRows] = []
            for info in infos:
                name = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise DataError(f"{path}: member {plain(info.filename)} is not a .npy array")
                if name in seen:
                    raise DataError(f"{path}: holds two arrays named {plain(name)}")
                if info.flag_bits & 0x1:
                    raise DataError(f"{path}: member {plain(info.filename)} is encrypted")
                seen.add(name)
                with archive.open(info) as stream:
                    out.append(_array_rows(path, name, stream))
            return out
    except _ZIP_ERRORS as exc:
        raise DataError(f"{path}: corrupt or truncated .npz file ({first_line(exc)})") from None


def _check_directory(path: Path, handle: IO[bytes]) -> None:
    """Refuse a zip whose central directory lists more members than any data archive holds,
    before ``zipfile`` builds an object per entry (a zip64 directory may list billions)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - (22 + 65535)))
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    handle.seek(0)
    if at < 0 or len(tail) - at < 22:
        raise DataError(f"{path}: " + ("empty, not an .npz (zip) file" if size == 0 else
                                       "not an .npz (zip) file, or truncated: no zip directory at its end"))
    entries, directory = struct.unpack("<6xHL", tail[at + 4: at + 16])  # total entries, size
    if entries == 0xFFFF or directory == 0xFFFFFFFF:  # zip64: the real counts are elsewhere
        locator = tail[at - 20: at] if at >= 20 else b""
        if locator[:4] == b"PK\x06\x07":
            (record_at,) = struct.unpack("<Q", locator[8:16])
            handle.seek(min(record_at, size))
            record = handle.read(56)
            handle.seek(0)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, directory = struct.unpack("<QQ", record[32:48])
    if entries > _MAX_MEMBERS or directory > _MAX_DIRECTORY:
        raise DataError(f"{path}: its zip directory lists {entries} members in {human_bytes(directory)}, "
                        f"more than the {_MAX_MEMBERS} arrays Guard records")


def _header(path: Path, name: str, stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    where = f"{path}: {plain(name)}" if name else str(path)
    header = read_npy_header(stream, where)
    if header.dtype.hasobject:
        raise DataError(f"{where}: holds Python objects, which could run code when read; "
                        "store numeric arrays")
    return header.shape, header.fortran_order, header.dtype


def _dtype_text(dtype: np.dtype[Any]) -> str:
    descr = np.lib.format.dtype_to_descr(dtype)
    return descr if isinstance(descr, str) else repr(descr)


def _array_rows(path: Path, name: str, stream: IO[bytes]) -> ArrayRows:
    shape, fortran, dtype = _header(path, name, stream)
    where = f"{path}: {plain(name)}" if name else str(path)
    total = math.prod(shape) * dtype.itemsize
    if total > limit("array_bytes"):
        raise DataError(f"{where}: declares {human_bytes(total)} of data, over the {describe('array_bytes')}")
    rows = shape[0] if shape else 0
    if rows > max_rows():
        raise _too_many(path, rows)
    if fortran and len(shape) > 1:  # rows are not contiguous on disk: read it whole (bounded above)
        flat = np.frombuffer(_read_exact(stream, total, where), dtype=dtype)
        data = np.ascontiguousarray(flat.reshape(shape, order="F")).view(np.uint8).reshape(-1)
        return _digest_rows(name, dtype, shape, iter([data.tobytes()]), rows, total)
    return _digest_rows(name, dtype, shape, _chunks(stream, total, rows, where), rows, total)


def _chunks(stream: IO[bytes], total: int, rows: int, where: str) -> Iterator[bytes]:
    row_bytes = total // rows if rows else total
    step = max(1, _CHUNK // row_bytes) * row_bytes if row_bytes else total
    done = 0
    while done < total:
        size = min(step, total - done)
        yield _read_exact(stream, size, where, done, total)
        done += size


def _read_exact(stream: IO[bytes], size: int, where: str, done: int = 0, total: int = -1) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            declared = size if total < 0 else total
            raise DataError(f"{where}: truncated: its header declares {declared} bytes of data, "
                            f"it holds {done + got}")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _digest_rows(name: str, dtype: np.dtype[Any], shape: tuple[int, ...], chunks: Iterator[bytes],
                 rows: int, total: int) -> ArrayRows:
    whole = hashlib.sha256()
    digests = bytearray()
    row_bytes = total // rows if rows else 0
    if rows and not row_bytes:
        digests += hashlib.sha256(b"").digest() * rows  # rows of no elements (shape (n, 0))
    for chunk in chunks:
        whole.update(chunk)
        if not row_bytes:
            continue
        view = memoryview(chunk)
        for at in range(0, len(view), row_bytes):
            digests += hashlib.sha256(view[at: at + row_bytes]).digest()
    return ArrayRows(name, _dtype_text(dtype), shape, whole.hexdigest(), bytes(digests))
