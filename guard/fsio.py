"""Atomic writes, and reads of input files that cannot block or grow without bound.

Atomic writes: nothing a user owns is ever left half-written.

Write to a temp file in the destination folder (same file system, so the rename is atomic),
fsync it, rename it over the target, then fsync the folder so the rename itself survives a
crash. On any error, KeyboardInterrupt included, the temp file is removed: the final name
holds either the complete result or whatever it held before. (A SIGKILL can leave a
``.NAME.PID.*.tmp`` file behind, never a partial file under the final name; the next write
to the same name removes it once process PID is gone.)
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only if the ``with`` block completes.

    The temp file is created with mode 0600 (mkstemp) and gets ``mode`` only once complete,
    so a secret being written is never readable by others on the way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove temp files a killed writer of ``path`` left behind; return what was removed.

    Only files of this module's own naming (``.NAME.PID.RANDOM.tmp``), owned by this user,
    whose writing process no longer runs: a decryption killed mid-way leaves one holding part
    of the plaintext (mode 0600), and without this they would pile up.
    """
    removed: list[Path] = []
    prefix, uid = f".{path.name}.", os.getuid()
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        candidate = path.parent / name
        try:
            info = os.lstat(candidate)
            if stat.S_ISREG(info.st_mode) and info.st_uid == uid:
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or not a pid: leave the file alone
    return True


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    with atomic_writer(path, mode) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder: nothing Guard reads as a file.

    ``kind`` says which, as a phrase ("a folder", "a FIFO, device or socket")."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.kind = kind


def open_regular(path: Path | str) -> tuple[int, os.stat_result]:
    """A descriptor of ``path`` and its ``fstat``, once it is known to be a regular file.

    Opened without blocking (a FIFO would otherwise wait forever for a writer) and checked
    through the open descriptor, so a file swapped for a FIFO after a check cannot slip
    through. Raises :class:`NotRegularFile` (the descriptor closed) for anything else, and
    ``OSError`` for a path that cannot be opened. The caller closes the descriptor.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO, device or socket"
            raise NotRegularFile(path, kind)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular_file(path: Path, limit: int) -> bytes:
    """The whole content of a regular file (:func:`open_regular`), read once.

    Raises :class:`NotRegularFile` for anything but a regular file, ``OSError`` for an
    unreadable file, and ``ValueError`` for one over ``limit`` bytes.
    """
    fd, info = open_regular(path)
    try:
        if info.st_size > limit:
            raise ValueError(f"{path} is {info.st_size} bytes, over the {limit}-byte limit")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:  # read to the end: a file may grow after fstat
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ValueError(f"{path} grew past the {limit}-byte limit while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_input(path: Path | str, what: str, limit_name: str) -> bytes:
    """The bytes of an input file Guard reads whole, bounded by the limit ``limit_name``
    (see :mod:`guard.limits`).

    Every file a user hands Guard (a pack, waivers, a baseline, a config, a report, a
    manifest, a key) goes through here, so a FIFO cannot block, ``/dev/zero`` cannot grow
    memory without bound, and every failure is one :class:`~guard.errors.InputFileError`
    line naming ``what`` and the path.
    """
    from guard.errors import InputFileError
    from guard.limits import describe, limit

    path = Path(path)
    cap = limit(limit_name)
    try:
        return read_regular_file(path, cap)
    except FileNotFoundError:
        raise InputFileError(f"{what} {path}: no such file") from None
    except NotRegularFile as exc:
        raise InputFileError(f"{what} {path}: is {exc.kind}, not a regular file") from None
    except ValueError:
        raise InputFileError(f"{what} {path}: larger than the {describe(limit_name)}") from None
    except OSError as exc:
        raise InputFileError(f"{what} {path}: cannot read ({exc.strerror or exc})") from None


def read_input_text(path: Path | str, what: str, limit_name: str) -> str:
    """:func:`read_input`, decoded as UTF-8 (a BOM is dropped)."""
    from guard.errors import InputFileError

    data = read_input(path, what, limit_name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None
