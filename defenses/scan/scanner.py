"""Scan files and folders: the entry points behind ``guard scan`` and the safe loader.

Files up to 4 MiB are read. A larger zip (a torch checkpoint, ``.npz``, ``.keras``, ``.skops``)
is read on demand (:class:`~guard.defenses.scan.fileview.FileView`): its central directory,
local headers and pickles, never its tensors, so a 10 GB checkpoint costs what a 10 MB one
does, and a file that shrinks meanwhile reads short and is reported. Any other large file is
mapped read-only; a mapped file that shrinks while it is read raises SIGBUS, which no Python
code can catch, so it is scanned in a forked child process and a child killed that way is a
finding on the file. Any
failure on hostile bytes becomes a finding on that file (``scan-error``, ``resource-limit``);
one bad file never stops a folder's scan. Only regular files are opened, without blocking: a
FIFO, device or socket is reported, never read, and so is a folder that cannot be listed.
"""

from __future__ import annotations

import bz2
import faulthandler
import gc
import json
import lzma
import mmap
import multiprocessing
import os
import signal
import stat
import struct
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from guard.defenses.scan.containers import FileScanner
from guard.defenses.scan.context import Budget, Findings, LimitReached
from guard.defenses.scan.fileview import FileShrank, FileView, NeedsMapping
from guard.defenses.scan.results import ScanFinding, ScanLimits, ScanResult, Severity

# What a parser bug on hostile input can raise; reported on the file instead of crashing a scan.
_PARSER_ERRORS = (IndexError, KeyError, ValueError, TypeError, struct.error, OverflowError,
                  RecursionError, MemoryError, EOFError, zlib.error, lzma.LZMAError,
                  tarfile.TarError, UnicodeError, AttributeError, OSError)
_ = bz2  # bz2.BZ2Decompressor raises OSError, listed above
_READ_WHOLE = 4 << 20
_DEFAULT_LIMITS = ScanLimits()
_CAN_FORK = hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()
_CHILD_GRACE_S = 30.0


def scan_bytes(data: bytes | bytearray | memoryview, name: str = "<bytes>",
               limits: ScanLimits | None = None) -> ScanResult:
    """Scan bytes already in memory (what the loader vetted is what it loads)."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    return _scan_buffer(data, name, limits or _DEFAULT_LIMITS)


def scan_file(path: str | os.PathLike[str], limits: ScanLimits | None = None) -> ScanResult:
    """Scan one file; unreadable and special files come back with status ``error`` and a
    ``scan-error``."""
    name = os.fspath(path)
    limits = limits or _DEFAULT_LIMITS
    started = time.perf_counter()
    try:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return _failed(name, f"cannot read: {exc.strerror or exc}", started)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _failed(name, "not a regular file (a FIFO, device or socket): not read; a loader "
                           "reading it gets whatever a writer sends", started)
        if info.st_size == 0:
            return ScanResult(name, "empty", (), time.perf_counter() - started)
        if info.st_size <= _READ_WHOLE:  # one read beats setting up a mapping
            with os.fdopen(os.dup(fd), "rb") as fh:
                return _scan_buffer(fh.read(info.st_size), name, limits)
        if os.pread(fd, 4, 0) in (b"PK\x03\x04", b"PK\x05\x06"):
            try:  # a zip (torch, npz, keras, skops): read on demand, never its tensors
                return _scan_buffer(FileView(fd, info.st_size), name, limits, reraise=(NeedsMapping,))
            except NeedsMapping:
                pass
        return _scan_mapped(fd, name, limits) if _CAN_FORK else _scan_mapping(fd, name, limits)
    except OSError as exc:
        return _failed(name, f"cannot read: {exc.strerror or exc}", started)
    finally:
        os.close(fd)


def iter_files(paths: Iterable[str | os.PathLike[str]],
               unreadable: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """The files under ``paths`` in a stable order, each once; folders are walked, links to
    folders are not. Folders that cannot be listed are added to ``unreadable`` as
    ``(path, reason)``, never skipped in silence."""
    seen: set[str] = set()

    def note(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append((os.fspath(exc.filename or ""), exc.strerror or str(exc)))

    for raw in paths:
        p = Path(raw)
        found = [p]
        if p.is_dir():
            found = []
            for root, dirs, files in os.walk(p, onerror=note):
                dirs[:] = sorted(d for d in dirs if not (Path(root) / d).is_symlink())
                found.extend(Path(root) / name for name in sorted(files))
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                yield f


def scan_paths(paths: Iterable[str | os.PathLike[str]], limits: ScanLimits | None = None) -> list[ScanResult]:
    """Scan files and folders (recursively); one result per file, in a stable order, and one
    ``scan-error`` result per folder that could not be listed."""
    unreadable: list[tuple[str, str]] = []
    results = [scan_file(p, limits) for p in iter_files(paths, unreadable)]
    started = time.perf_counter()
    for folder, why in unreadable:
        results.append(_failed(folder, f"cannot list this folder ({why}): the files in it were not "
                               "scanned", started, fmt="folder"))
    return results


def _scan_mapping(fd: int, name: str, limits: ScanLimits) -> ScanResult:
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
        return _scan_buffer(data, name, limits)


def _scan_mapped(fd: int, name: str, limits: ScanLimits) -> ScanResult:
    """Scan a mapped file in a forked child, so that SIGBUS (the file shrank under the
    mapping) ends the child, not the scan; the child sends its result back as JSON."""
    started = time.perf_counter()
    import numpy.lib.format  # noqa: F401  (imported once here, not again in every child)

    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_scan_in_child, args=(fd, name, limits, writer), daemon=True)
    child.start()
    writer.close()
    payload: bytes | None = None
    try:
        if reader.poll(limits.timeout_s + _CHILD_GRACE_S):
            payload = reader.recv_bytes()
    except (EOFError, OSError):
        payload = None
    finally:
        reader.close()
        child.join(5.0)
        if child.is_alive():
            child.kill()
            child.join()
    if payload is not None:
        return _decode(payload)
    if child.exitcode == -signal.SIGBUS:
        return _failed(name, "the file changed (it shrank) while it was scanned; scan it again once "
                       "nothing writes to it", started)
    if child.exitcode in (None, -signal.SIGKILL):
        return _failed(name, f"scan took longer than {limits.timeout_s:g} s", started,
                       rule="resource-limit")
    return _failed(name, f"the scan ended unexpectedly (exit status {child.exitcode})", started)


def _scan_in_child(fd: int, name: str, limits: ScanLimits, writer: Any) -> None:
    faulthandler.disable()  # a SIGBUS here is expected and reported by the parent
    result = _scan_mapping(fd, name, limits)
    writer.send_bytes(_encode(result))
    writer.close()


def _encode(result: ScanResult) -> bytes:
    findings = [[int(f.severity), f.rule, f.global_name, f.detail, f.offset, f.member]
                for f in result.findings]
    return json.dumps([result.path, result.format, findings, result.duration_s]).encode("utf-8")


def _decode(payload: bytes) -> ScanResult:
    path, fmt, findings, duration = json.loads(payload)
    return ScanResult(path, fmt, tuple(ScanFinding(Severity(f[0]), f[1], f[2], f[3], f[4], f[5])
                                       for f in findings), duration)


def _scan_buffer(data: Any, name: str, limits: ScanLimits,
                 reraise: tuple[type[BaseException], ...] = ()) -> ScanResult:
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
    except reraise:
        raise
    except LimitReached as exc:
        findings.report(Severity.HIGH, "resource-limit", "",
                        f"stopped: {exc}; a file built to exhaust a scanner exhausts loaders too", 0, "")
    except FileShrank:
        findings.report(Severity.HIGH, "scan-error", "", "the file changed (it shrank) while it was "
                        "scanned; scan it again once nothing writes to it", 0, "")
    except _PARSER_ERRORS as exc:
        findings.report(Severity.HIGH, "scan-error", "",
                        f"the scanner could not parse this file ({type(exc).__name__}: {exc})", 0, "")
    finally:
        if collecting:
            gc.enable()
    return ScanResult(name, fmt, findings.as_tuple(), time.perf_counter() - started)


def _failed(name: str, why: str, started: float, *, rule: str = "scan-error",
            fmt: str = "unknown") -> ScanResult:
    findings = Findings()
    findings.report(Severity.HIGH, rule, "", why, 0, "")
    return ScanResult(name, fmt, findings.as_tuple(), time.perf_counter() - started)
