"""Reading an ``.npz`` archive with every size checked before anything is allocated.

An ``.npz`` is a zip of ``.npy`` members. Before ``zipfile`` builds its member list, the
central directory's declared size and entry count are checked (a zip64 directory may list
billions of entries); then each member's declared uncompressed size, then each ``.npy``
header's shape and dtype, against ``array_bytes`` (:mod:`guard.limits`). Only then is each
array read, into memory allocated for exactly what its header declares, so a small archive
that inflates to gigabytes, or a header declaring 10^12 rows, costs a header read. Object
arrays, which could run code when read, are refused from their header.
"""

from __future__ import annotations

import lzma
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from guard.errors import DataError
from guard.limits import describe, human_bytes, limit

NPZ_KEYS = frozenset({"x", "y", "x_train", "y_train", "feature_names"})
_FEATURE_KEYS = frozenset({"x", "x_train"})
_LABEL_KEYS = frozenset({"y", "y_train"})
_MAX_ZIP_MEMBERS = 64
_MAX_ZIP_DIRECTORY = 1 << 20  # bytes of central directory: an .npz of five arrays needs < 1 KiB
_MAX_HEADER = 16 << 10  # an .npy header (numpy reads at most 10,000 characters of one)
_MAX_AXES = 32
_READ_CHUNK = 1 << 24
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError,
               zlib.error, lzma.LZMAError, struct.error)


def read_npz_arrays(path: Path, handle: IO[bytes], *,
                    training: bool = False) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` open as ``handle`` (positioned anywhere), checked before
    they are read; every failure is a one-line :class:`DataError` naming ``path``. It must
    hold ``x`` and ``y``; with ``training``, ``x_train`` and ``y_train`` will do instead."""
    try:
        handle.seek(0)
        _check_zip_directory(path, handle)
        with zipfile.ZipFile(handle) as archive:
            return _read_arrays(path, archive, training)
    except _ZIP_ERRORS as exc:
        raise DataError(f"{path}: corrupt or truncated .npz file ({first_line(exc)})") from None


@dataclass(frozen=True, slots=True)
class _NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    def cost(self, key: str) -> int:
        """Bytes in memory once decoded, with the converted copy that validation makes
        (integer features become float64, labels int64, names Python strings)."""
        raw = self.count * self.dtype.itemsize
        if key in _FEATURE_KEYS:
            kept = self.dtype.kind == "f" and self.dtype.itemsize in (4, 8)
            return raw if kept else raw + 8 * self.count
        if key in _LABEL_KEYS:
            return raw + 8 * self.count
        return raw + 64 * self.count


def _check_zip_directory(path: Path, handle: IO[bytes]) -> None:
    """Refuse a zip whose central directory is far larger than five arrays need, before
    ``zipfile`` builds an object per entry (a zip64 directory may list billions)."""
    size = handle.seek(0, os.SEEK_END)
    tail_start = max(0, size - (22 + 65535))
    handle.seek(tail_start)
    tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")  # the end-of-central-directory record, as zipfile finds it
    if at < 0 or len(tail) - at < 22:
        handle.seek(0)
        return  # not a zip: zipfile says so
    entries, directory, offset = struct.unpack("<6xHLL", tail[at + 4 : at + 20])
    if entries == 0xFFFF or 0xFFFFFFFF in (directory, offset):  # the zip64 record holds them
        locator = tail[at - 20 : at] if at >= 20 else b""
        if locator[:4] == b"PK\x06\x07":
            (record_at,) = struct.unpack("<Q", locator[8:16])
            if record_at < size:
                handle.seek(record_at)
                record = handle.read(56)
                if len(record) == 56 and record[:4] == b"PK\x06\x06":
                    entries, directory = struct.unpack("<QQ", record[32:48])
    if entries > _MAX_ZIP_MEMBERS or directory > _MAX_ZIP_DIRECTORY:
        raise DataError(f"{path}: its zip directory lists {entries} members in {human_bytes(directory)}; "
                        "an .npz for Guard holds x, y and optionally x_train, y_train, feature_names")
    handle.seek(0)


def _read_arrays(path: Path, archive: zipfile.ZipFile, training: bool = False) -> dict[str, np.ndarray]:
    members: dict[str, zipfile.ZipInfo] = {}
    unknown: list[str] = []
    for info in archive.infolist():
        key = info.filename.removesuffix(".npy")
        if key not in NPZ_KEYS or not info.filename.endswith(".npy"):
            unknown.append(plain(key if info.filename.endswith(".npy") else info.filename))
        elif key in members:
            raise DataError(f"{path}: holds two members named {shown(info.filename)}")
        else:
            members[key] = info
    if unknown:
        raise DataError(f"{path}: unexpected arrays {', '.join(sorted(unknown)[:10])}; expected x, y "
                        "and optionally x_train, y_train, feature_names")
    missing = [key for key in ("x", "y") if key not in members]
    if training and {"x_train", "y_train"} <= set(members):
        missing = []
    if missing:
        if training:
            raise DataError(f"{path}: no training arrays: expected x_train and y_train (or x and y)")
        raise DataError(f"{path}: missing array {' and '.join(missing)}")
    cap = limit("array_bytes")
    declared = sum(info.file_size for info in members.values())
    if declared > cap + _MAX_HEADER * len(members):
        raise DataError(f"{path}: its members inflate to {human_bytes(declared)}, over the "
                        f"{describe('array_bytes')}")
    headers = {key: _member_header(path, archive, info) for key, info in members.items()}
    needed = sum(header.cost(key) for key, header in headers.items())
    if needed > cap:
        shapes = ", ".join(f"{key} {h.shape} {h.dtype}" for key, h in headers.items())
        raise DataError(f"{path}: its arrays ({shapes}) would take {human_bytes(needed)} in memory, "
                        f"over the {describe('array_bytes')}")
    return {key: _member_array(path, archive, members[key], header) for key, header in headers.items()}


def _member_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _NpyHeader:
    if info.flag_bits & 0x1:
        raise DataError(f"{path}: member {plain(info.filename)} is encrypted")
    with archive.open(info) as stream:
        header = _npy_header(path, info.filename, stream)
    name = info.filename.removesuffix(".npy")
    dtype = header.dtype
    if dtype.hasobject:
        raise DataError(f"{path}: {name} holds object arrays, which could run code when read; store "
                        "numeric arrays")
    if dtype.kind not in "biufcUS" or dtype.subdtype is not None:
        raise DataError(f"{path}: {name} has dtype {shown(str(dtype))}; store plain numeric arrays")
    if len(header.shape) > _MAX_AXES or any(d < 0 for d in header.shape):
        raise DataError(f"{path}: {name} has a header declaring shape {shown(header.shape)}")
    return header


def _npy_header(path: Path, name: str, stream: IO[bytes]) -> _NpyHeader:
    """Read past the magic and header of one .npy member (numpy's own bounded parser)."""
    return read_npy_header(stream, f"{path}: {plain(name)}")


def read_npy_header(stream: IO[bytes], where: str) -> _NpyHeader:
    """The shape, order and dtype of the .npy stream ``stream`` (read past its header), with
    numpy's own bounded parser; ``where`` names it in the one-line DataError for a format
    Guard does not read or a header that is not one."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream)
        else:
            raise DataError(f"{where} uses .npy format {version[0]}.{version[1]}, which Guard does not "
                            "read; write it with numpy.save or numpy.savez")
    except (ValueError, TypeError, SyntaxError, RecursionError, EOFError) as exc:
        raise DataError(f"{where} is not a valid .npy array ({first_line(exc)})") from None
    return _NpyHeader(tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype))


def _member_array(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                  header: _NpyHeader) -> np.ndarray:
    """The member's array, read into memory allocated for exactly what its header declares;
    big-endian data is swapped in place to native order (torch takes no other)."""
    flat = np.empty(header.count, dtype=header.dtype)
    with archive.open(info) as stream:
        _npy_header(path, info.filename, stream)
        if flat.nbytes:
            view, filled = flat.view(np.uint8).data, 0
            while filled < len(view):
                chunk = stream.read(min(_READ_CHUNK, len(view) - filled))
                if not chunk:
                    raise DataError(f"{path}: {plain(info.filename)} is truncated: its header "
                                    f"declares {len(view)} bytes of data, it holds {filled}")
                view[filled : filled + len(chunk)] = chunk
                filled += len(chunk)
    array = flat.reshape(header.shape, order="F" if header.fortran_order else "C")
    if not array.dtype.isnative:
        array = array.byteswap(inplace=True).view(array.dtype.newbyteorder("="))
    return array


def shown(value: Any) -> str:
    """A value from the file as it may appear in a one-line message: repr, at most 60 chars."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain(name: str) -> str:
    return name if name.isprintable() and len(name) <= 40 else shown(name)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
