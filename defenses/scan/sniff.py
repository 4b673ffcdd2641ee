"""Format sniffers that validate what they claim: a forged first few bytes fall through.

A file whose first bytes merely look like a safetensors header, or a tar archive without the
``ustar`` magic, must be judged by what a loader would accept: the safetensors header must
be JSON of exactly the shape the safetensors library validates, and a tar header's checksum
must add up (Python's ``tarfile``, and so ``torch.load``'s legacy tar reader, accept old v7
headers, which have no magic at all).
"""

from __future__ import annotations

import io
import json
from typing import Any

_MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors library's own limit
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
    "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8,
    "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1,
}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_safetensors(data: Any, start: int, end: int) -> bool:
    """True only for a header the safetensors library would accept: JSON of tensor entries
    (dtype, shape, data_offsets) whose byte ranges tile the payload exactly."""
    if end - start < 10:
        return False
    n = int.from_bytes(bytes(data[start:start + 8]), "little")
    if not 2 <= n <= min(_MAX_SAFETENSORS_HEADER, end - start - 8) or data[start + 8] != 0x7B:
        return False
    try:
        header = json.loads(bytes(data[start + 8:start + 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(header, dict):
        return False
    payload = end - start - 8 - n
    spans: list[tuple[int, int]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            if not (isinstance(entry, dict) and all(isinstance(v, str) for v in entry.values())):
                return False
            continue
        span = _tensor_span(entry)
        if span is None:
            return False
        spans.append(span)
    spans.sort()
    cursor = 0
    for lo, hi in spans:
        if lo != cursor:
            return False
        cursor = hi
    return cursor == payload


def _tensor_span(entry: Any) -> tuple[int, int] | None:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        return None
    size = _DTYPE_BYTES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    shape, offsets = entry["shape"], entry["data_offsets"]
    if size is None or not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
        return None
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            return None
        count *= dim
    lo, hi = offsets
    if type(lo) is not int or type(hi) is not int or not 0 <= lo <= hi:
        return None
    if entry["dtype"] == "F4":  # two 4-bit values per byte
        count = (count + 1) // 2
    return (lo, hi) if hi - lo == count * size else None


def is_tar(data: Any, start: int, end: int) -> bool:
    """A tar archive: ``ustar`` magic, or a v7 header whose checksum is right."""
    if end - start < 512:
        return False
    if data[start + 257:start + 262] == b"ustar":
        return True
    header = bytes(data[start:start + 512])
    if header[0] == 0:
        return False
    field = header[148:156].rstrip(b" \x00")
    if not field or any(c not in b"01234567" for c in field):
        return False
    stored = int(field, 8)
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)
    signed = sum(b - 256 if b > 127 else b for b in blanked)
    return stored in (unsigned, signed)


def hdf5_offset(data: Any, start: int, end: int) -> int | None:
    """Where the HDF5 superblock signature is (0, 512, 1024, ...: a user block of any power of
    two from 512 bytes may precede it), or None."""
    at = 0
    while start + at + 8 <= end:
        if data[start + at:start + at + 8] == HDF5_SIGNATURE:
            return at
        at = 512 if at == 0 else at * 2
    return None


class Window(io.RawIOBase):
    """A read-only file over ``data[start:end]`` (for :mod:`tarfile`, h5py), without copying it."""

    def __init__(self, data: Any, start: int, end: int) -> None:
        self._data, self._start, self._end, self._pos = data, start, end, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: self._start, 1: self._pos, 2: self._end}[whence]
        self._pos = min(max(self._start, base + offset), self._end)
        return self._pos - self._start

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._end - self._pos)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n
