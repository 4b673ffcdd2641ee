"""Scan files and folders: the entry points behind ``guard scan`` and the safe loader.

A file is mapped read-only rather than read, so a 10 GB checkpoint costs its central
directory and its pickles, not its tensors. Any failure on hostile bytes becomes a finding
on that file (``scan-error``, ``resource-limit``); one bad file never stops a folder's scan.
"""

from __future__ import annotations

import bz2
import gc
import lzma
import mmap
import os
import struct
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from guard.defenses.scan.containers import FileScanner
from guard.defenses.scan.context import Budget, Findings, LimitReached
from guard.defenses.scan.results import ScanLimits, ScanResult, Severity

# What a parser bug on hostile input can raise; reported on the file instead of crashing a scan.
_PARSER_ERRORS = (IndexError, KeyError, ValueError, TypeError, struct.error, OverflowError,
                  RecursionError, MemoryError, EOFError, zlib.error, lzma.LZMAError,
                  tarfile.TarError, UnicodeError, AttributeError, OSError)
_ = bz2  # bz2.BZ2Decompressor raises OSError, listed above
_READ_WHOLE = 1 << 20
_DEFAULT_LIMITS = ScanLimits()


def scan_bytes(data: bytes | bytearray | memoryview, name: str = "<bytes>",
               limits: ScanLimits | None = None) -> ScanResult:
    """Scan bytes already in memory (what the loader vetted is what it loads)."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    return _scan_buffer(data, name, limits or _DEFAULT_LIMITS)


def scan_file(path: str | os.PathLike[str], limits: ScanLimits | None = None) -> ScanResult:
    """Scan one file; unreadable files come back with status ``error`` and a ``scan-error``."""
    name = os.fspath(path)
    limits = limits or _DEFAULT_LIMITS
    started = time.perf_counter()
    try:
        with open(name, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return ScanResult(name, "empty", (), time.perf_counter() - started)
            if size <= _READ_WHOLE:  # small files: one read beats setting up a mapping
                return _scan_buffer(fh.read(), name, limits)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _scan_buffer(data, name, limits)
    except OSError as exc:
        return _failed(name, f"cannot read: {exc.strerror or exc}", started)


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The files under ``paths`` in a stable order, each once; folders are walked, links to
    folders are not."""
    seen: set[str] = set()
    for raw in paths:
        p = Path(raw)
        found = [p]
        if p.is_dir():
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not (Path(root) / d).is_symlink())
                found.extend(Path(root) / name for name in sorted(files))
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                yield f


def scan_paths(paths: Iterable[str | os.PathLike[str]], limits: ScanLimits | None = None) -> list[ScanResult]:
    """Scan files and folders (recursively); one result per file, in a stable order."""
    return [scan_file(p, limits) for p in iter_files(paths)]


def _scan_buffer(data: Any, name: str, limits: ScanLimits) -> ScanResult:
    """Scan one buffer with the cyclic garbage collector paused.

    A large pickle puts millions of small symbolic values on the walker's memo; each automatic
    collection would traverse all of them again, which halves the scan's speed. They hold no
    resources, and the rare cycle (a list that contains itself) is collected once the
    collector runs again. Pausing is process-wide: other threads run without collections
    for the duration of one file's scan.
    """
    started = time.perf_counter()
    budget = Budget(limits)
    findings = Findings()
    scanner = FileScanner(budget, findings)
    fmt = "unknown"
    collecting = gc.isenabled()
    gc.disable()
    try:
        fmt = scanner.scan(data, 0, len(data), "", 0, os.path.basename(name))
    except LimitReached as exc:
        findings.report(Severity.HIGH, "resource-limit", "",
                        f"stopped: {exc}; a file built to exhaust a scanner exhausts loaders too", 0, "")
    except _PARSER_ERRORS as exc:
        findings.report(Severity.HIGH, "scan-error", "",
                        f"the scanner could not parse this file ({type(exc).__name__}: {exc})", 0, "")
    finally:
        if collecting:
            gc.enable()
    return ScanResult(name, fmt, findings.as_tuple(), time.perf_counter() - started)


def _failed(name: str, why: str, started: float) -> ScanResult:
    findings = Findings()
    findings.report(Severity.HIGH, "scan-error", "", why, 0, "")
    return ScanResult(name, "unknown", findings.as_tuple(), time.perf_counter() - started)
