"""A zip reader that tolerates what loaders tolerate, and says so.

Published bypasses of picklescan hide a pickle in a zip that Python's ``zipfile`` rejects
(an entry flagged encrypted, a bad CRC, a broken central directory) while PyTorch's reader
loads it anyway. So this reader never gives up on an entry: it reads the central directory
itself (zip64 and prefixed archives included), falls back to the local headers when the
directory is broken, finds entries that only a local header knows of, and reports every
anomaly as a finding for the caller to raise. It only parses; inflating and scanning the
entries is :mod:`guard.defenses.scan.containers`' job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

_EOCD = struct.Struct("<4s4H2LH")
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_KNOWN_FLAGS = 0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0800
_MAX_ENTRIES = 1_000_000


@dataclass(slots=True)
class ZipEntry:
    """One entry, located: ``data_start`` is where its (compressed) bytes begin."""

    name: str
    flags: int
    method: int
    crc: int
    csize: int
    usize: int
    header_offset: int
    data_start: int = -1
    source: str = "central"


@dataclass(slots=True)
class ZipListing:
    """The entries a reader would see, and what was odd about the archive (rule, detail, offset)."""

    entries: list[ZipEntry] = field(default_factory=list)
    problems: list[tuple[str, str, int]] = field(default_factory=list)


def list_zip(data: Any, start: int, end: int) -> ZipListing:
    """Entries of the zip in ``data[start:end]``, from the central directory or local headers."""
    listing = ZipListing()
    central = _read_central(data, start, end, listing)
    if central is None:
        listing.problems.append(("zip-corrupt", "central directory missing or unreadable; entries "
                                 "recovered from local headers", 0))
        listing.entries = _scan_local_headers(data, start, end)
        return listing
    listing.entries = central
    seen: set[str] = set()
    for entry in central:
        if entry.name in seen:
            listing.problems.append(("zip-duplicate-name", f"two entries named {entry.name!r}: readers "
                                     "disagree on which one is loaded", entry.header_offset - start))
        seen.add(entry.name)
        _locate(data, start, end, entry, listing)
    _find_hidden(data, start, end, listing)
    return listing


def has_central_directory(data: Any, start: int, end: int) -> bool:
    """True if ``data[start:end]`` ends with a readable zip central directory."""
    if data.rfind(b"PK\x05\x06", max(start, end - _EOCD.size - 0xFFFF), end) < 0:
        return False
    return _read_central(data, start, end, ZipListing()) is not None


def _read_central(data: Any, start: int, end: int, listing: ZipListing) -> list[ZipEntry] | None:
    eocd = data.rfind(b"PK\x05\x06", max(start, end - _EOCD.size - 0xFFFF), end)
    if eocd < 0 or eocd + _EOCD.size > end:
        return None
    _, _, _, _, count, cd_size, cd_offset, _ = _EOCD.unpack(data[eocd:eocd + _EOCD.size])
    cd_end = eocd
    locator = eocd - _EOCD64_LOCATOR.size
    if locator >= start and data[locator:locator + 4] == b"PK\x06\x07":
        record = locator - _EOCD64.size
        if record >= start and data[record:record + 4] == b"PK\x06\x06":
            fields = _EOCD64.unpack(data[record:record + _EOCD64.size])
            count, cd_size, cd_offset = fields[7], fields[8], fields[9]
            cd_end = record
    cd_start = cd_end - cd_size
    if cd_start < start or count > _MAX_ENTRIES:
        return None
    # Bytes before the archive (a prefixed or polyglot file) shift every recorded offset.
    shift = cd_start - (start + cd_offset)
    if shift:
        listing.problems.append(("polyglot-file", f"{shift} bytes precede the zip archive", 0))
    entries: list[ZipEntry] = []
    directory = bytes(data[cd_start:cd_end])  # one read, whatever kind of buffer ``data`` is
    pos, cd_end = 0, cd_end - cd_start
    for _ in range(count):
        if pos + _CENTRAL.size > cd_end or directory[pos:pos + 4] != b"PK\x01\x02":
            return None
        f = _CENTRAL.unpack_from(directory, pos)
        flags, method, crc, csize, usize = f[3], f[4], f[7], f[8], f[9]
        n_name, n_extra, n_comment, local = f[10], f[11], f[12], f[16]
        name_at = pos + _CENTRAL.size
        name = _decode_name(directory[name_at:name_at + n_name], flags)
        extra = directory[name_at + n_name:name_at + n_name + n_extra]
        usize, csize, local = _zip64_sizes(extra, usize, csize, local)
        entries.append(ZipEntry(name, flags, method, crc, csize, usize, start + local + shift))
        pos = name_at + n_name + n_extra + n_comment
    return entries


def _zip64_sizes(extra: bytes, usize: int, csize: int, local: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + size]
        if tag == 0x0001:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            if local == 0xFFFFFFFF and values:
                local = values.pop(0)
        pos += 4 + size
    return usize, csize, local


def _decode_name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x0800 else "cp437", "replace")


def _locate(data: Any, start: int, end: int, entry: ZipEntry, listing: ZipListing) -> None:
    at = entry.header_offset
    where = at - start
    if at < start or at + _LOCAL.size > end or data[at:at + 4] != b"PK\x03\x04":
        listing.problems.append(("zip-corrupt", f"{entry.name!r}: no local header where the central "
                                 "directory points", where))
        return
    f = _LOCAL.unpack(data[at:at + _LOCAL.size])
    l_flags, l_method, n_name, n_extra = f[2], f[3], f[9], f[10]
    l_name = _decode_name(bytes(data[at + _LOCAL.size:at + _LOCAL.size + n_name]), l_flags)
    entry.data_start = at + _LOCAL.size + n_name + n_extra
    if l_name != entry.name or l_method != entry.method:
        listing.problems.append(("zip-header-mismatch", f"local header says {l_name!r} (method "
                                 f"{l_method}), central directory says {entry.name!r} (method "
                                 f"{entry.method})", where))
    odd = entry.flags | l_flags
    entry.flags = odd  # the encrypted bit, from either header, is judged by the entry's content
    if odd & ~_KNOWN_FLAGS:
        listing.problems.append(("zip-odd-flags", f"{entry.name!r} has unusual flag bits "
                                 f"0x{odd:04x}", where))
    if entry.data_start + entry.csize > end:
        listing.problems.append(("zip-corrupt", f"{entry.name!r} runs past the end of the archive", where))
        entry.csize = max(0, end - entry.data_start)


def _scan_local_headers(data: Any, start: int, end: int) -> list[ZipEntry]:
    """Entries from local headers alone, for an archive whose central directory is gone."""
    entries: list[ZipEntry] = []
    pos = data.find(b"PK\x03\x04", start, end)
    while 0 <= pos and pos + _LOCAL.size <= end and len(entries) < _MAX_ENTRIES:
        f = _LOCAL.unpack(data[pos:pos + _LOCAL.size])
        flags, method, crc, csize, usize, n_name, n_extra = f[2], f[3], f[6], f[7], f[8], f[9], f[10]
        name = _decode_name(bytes(data[pos + _LOCAL.size:pos + _LOCAL.size + n_name]), flags)
        data_start = pos + _LOCAL.size + n_name + n_extra
        nxt = data.find(b"PK\x03\x04", data_start, end)
        if flags & 0x0008 or csize == 0xFFFFFFFF or data_start + csize > end:
            # Sizes unknown until a trailing data descriptor: take everything up to the next header.
            csize = (nxt if nxt >= 0 else end) - data_start
            usize = csize if method == 0 else 0
        entries.append(ZipEntry(name, flags, method, crc, max(0, csize), usize, pos, data_start, "local"))
        pos = data.find(b"PK\x03\x04", max(data_start + max(0, csize), pos + 4), end)
    return entries


def _find_hidden(data: Any, start: int, end: int, listing: ZipListing) -> None:
    """Local headers in the gaps between listed entries: data no directory reader will show."""
    spans = sorted((e.header_offset, e.data_start + e.csize) for e in listing.entries if e.data_start >= 0)
    cursor = start
    gaps: list[tuple[int, int]] = []
    for lo, hi in spans:
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    central = data.find(b"PK\x01\x02", cursor, end)
    gaps.append((cursor, central if central >= 0 else end))
    for lo, hi in gaps:
        for hidden in _scan_local_headers(data, lo, hi):
            hidden.source = "hidden"
            listing.entries.append(hidden)
            listing.problems.append(("zip-hidden-entry", f"{hidden.name!r} has a local header but no "
                                     "central directory entry", hidden.header_offset - start))
