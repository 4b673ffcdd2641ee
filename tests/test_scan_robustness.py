"""The scanner under a hostile file system: files that shrink while mapped, folders it cannot
list, FIFOs and devices. Each ends as a finding on that path, in bounded time, never a crash,
a hang or a folder reported clean."""

from __future__ import annotations

import os
import pickle
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from guard.defenses.scan import scan_file, scan_paths
from guard.defenses.scan import scanner as scanner_module


def big_zip(path: Path, size: int) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/data.pkl", pickle.dumps({"w": 1}))
        archive.writestr("m/data/0", os.urandom(size))


def big_pickle(path: Path, size: int) -> None:
    path.write_bytes(pickle.dumps({"w": os.urandom(size)}, protocol=4))


@pytest.mark.parametrize(("name", "make", "buffer", "keep"), [
    # a large non-zip file is mapped in a forked child: the truncation raises SIGBUS there
    pytest.param("ckpt.pkl", big_pickle, "mmap", 100, marks=pytest.mark.skipif(
        not scanner_module._CAN_FORK, reason="mapped files are scanned in place here")),
    # a large zip is read on demand, never mapped: the truncation makes a read come back short
    ("ckpt.pt", big_zip, "FileView", 1 << 20),
])
def test_file_that_shrinks_while_scanned_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      name: str, make: Any, buffer: str, keep: int) -> None:
    path = tmp_path / name
    make(path, 3 << 20)
    monkeypatch.setattr(scanner_module, "_READ_WHOLE", 1 << 20)  # scan it as a large file
    real = scanner_module._scan_buffer

    def truncate_first(data: Any, name: str, limits: Any, **kwargs: Any) -> Any:
        assert type(data).__name__ == buffer
        os.truncate(name, keep)  # another process truncates the file mid-scan
        return real(data, name, limits, **kwargs)

    monkeypatch.setattr(scanner_module, "_scan_buffer", truncate_first)
    result = scan_file(path)
    assert result.status == "error"
    assert result.worst is not None and result.worst.rule == "scan-error"
    assert "shrank" in result.worst.detail


@pytest.mark.parametrize("make", [big_zip, big_pickle])
def test_large_file_scans_like_a_read_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          make: Any) -> None:
    path = tmp_path / "ckpt.pt"
    make(path, 3 << 20)
    read = scan_file(path)
    monkeypatch.setattr(scanner_module, "_READ_WHOLE", 1 << 20)
    large = scan_file(path)
    assert (large.format, large.findings) == (read.format, read.findings)


def test_huge_pickle_entry_in_a_large_zip_is_mapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry too large to read into memory for a walk sends the file to the mapped scan."""
    from guard.defenses.scan import containers

    path = tmp_path / "ckpt.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("m/data.pkl", b"cos\nsystem\n(S'touch x'\ntR." + b"\x00" * (2 << 20))
        archive.writestr("m/data/0", os.urandom(3 << 20))
    monkeypatch.setattr(scanner_module, "_READ_WHOLE", 1 << 20)
    monkeypatch.setattr(containers, "MAX_READ", 1 << 20)
    result = scan_file(path)
    assert result.worst is not None and result.worst.global_name == "os.system", result.findings


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_reported_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1, 2]))
    os.mkfifo(tmp_path / "model.pkl")  # no writer: opening it to read would block forever
    started = time.monotonic()
    results = {Path(r.path).name: r for r in scan_paths([tmp_path])}
    assert time.monotonic() - started < 10
    assert results["ok.pkl"].status == "clean"
    fifo = results["model.pkl"]
    assert fifo.status == "error" and fifo.worst is not None and "FIFO" in fifo.worst.detail
    device = scan_file("/dev/zero")
    assert device.status == "error" and device.worst is not None and "regular file" in device.worst.detail


def test_unlistable_subfolder_is_reported_not_skipped(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps([1, 2]))
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "evil.pkl").write_bytes(b"cos\nsystem\n(S'touch x'\ntR.")
    real = os.scandir

    def deny(path: Any = ".") -> Any:  # chmod 000 does not stop root, so deny like the kernel would
        if Path(os.fsdecode(path)) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", deny)
    results = scan_paths([tmp_path])
    by_path = {r.path: r for r in results}
    assert by_path[str(locked)].status == "error"
    assert "Permission denied" in by_path[str(locked)].findings[0].detail
    assert by_path[str(locked)].fails(scanner_module.Severity.HIGH)
