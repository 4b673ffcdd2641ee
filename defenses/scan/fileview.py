"""A large file read on demand: the slices, ``find`` and ``rfind`` the zip reader needs, each
read with ``os.pread`` when asked for, so a 10 GB checkpoint costs its central directory, its
local headers and its pickles, never its tensors.

Unlike a memory map, a file that shrinks while it is read cannot kill the process (SIGBUS):
a read that comes back short raises :class:`FileShrank`, which the scanner reports on the file.
"""

from __future__ import annotations

import os

_CHUNK = 1 << 20
_BLOCK = 1 << 12
_SMALL = 512
_CACHED_BLOCKS = 8


class FileShrank(OSError):
    """The file is shorter than it was when the scan began: something is writing to it."""


class NeedsMapping(Exception):  # noqa: N818  (a signal to the scanner, not an error)
    """The scan must walk more of the file than is sensible to read into memory (a huge
    pickle entry): the scanner maps the file instead."""


MAX_READ = 256 << 20
"""The most one entry may be read into memory for a walk; past it the file is mapped."""


class FileView:
    """``fd``'s first ``size`` bytes, as far as slicing and searching go (bytes come back)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self._blocks: dict[int, bytes] = {}  # the last few 4 KiB blocks small reads came from

    def __len__(self) -> int:
        return self.size

    def read(self, start: int, stop: int) -> bytes:
        start, stop = max(0, start), min(stop, self.size)
        if stop <= start:
            return b""
        first = start // _BLOCK
        if stop - start <= _SMALL and (stop - 1) // _BLOCK == first:
            # Zip headers, names and signatures: a few small reads near each other share a block.
            block = self._blocks.get(first)
            if block is None:
                block = self._pread(first * _BLOCK, min(self.size, (first + 1) * _BLOCK))
                if len(self._blocks) >= _CACHED_BLOCKS:
                    del self._blocks[next(iter(self._blocks))]
                self._blocks[first] = block
            return block[start - first * _BLOCK:stop - first * _BLOCK]
        return self._pread(start, stop)

    def _pread(self, start: int, stop: int) -> bytes:
        out = os.pread(self.fd, stop - start, start)
        if len(out) != stop - start:
            raise FileShrank(f"the file shrank while it was scanned (to {start + len(out)} of "
                             f"{self.size} bytes)")
        return out

    def __getitem__(self, key: int | slice) -> bytes | int:
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError("FileView slices take no step")
            start, stop, _ = key.indices(self.size)
            return self.read(start, stop)
        index = key + self.size if key < 0 else key
        if not 0 <= index < self.size:
            raise IndexError("FileView index out of range")
        return self.read(index, index + 1)[0]

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        end = self.size if end is None else min(end, self.size)
        at = max(0, start)
        while at < end:
            stop = min(end, at + _CHUNK + len(sub) - 1)
            hit = self.read(at, stop).find(sub)
            if hit >= 0:
                return at + hit
            if stop >= end:
                break
            at += _CHUNK
        return -1

    def rfind(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        end = self.size if end is None else min(end, self.size)
        start = max(0, start)
        hi = end
        while hi > start:
            lo = max(start, hi - _CHUNK - len(sub) + 1)
            hit = self.read(lo, hi).rfind(sub)
            if hit >= 0:
                return lo + hit
            if lo <= start:
                break
            hi = lo + len(sub) - 1
        return -1
