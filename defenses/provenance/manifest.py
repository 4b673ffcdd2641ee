"""``guard data manifest``: the SHA-256 of every file of a data set, and of every row of its
CSV and array files, so that a later change is located to the file and the row.

Files are named by POSIX paths relative to the manifest's own folder, so data and manifest move
together; a path outside that folder, a symlink or a special file is refused. A folder given
whole is recorded too, so a file added to it later is reported. Whole-file SHA-256 is what
decides whether a file is unchanged; row digests (:mod:`.rows`) only say where it changed.
The JSON layout is in :mod:`.document`; ``docs/provenance.md`` describes it for users.
"""

from __future__ import annotations

import hashlib
import io
import os
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from guard.defenses.crypto.manifest import IGNORED_NAMES
from guard.defenses.provenance.rows import DIGEST, csv_rows, npy_rows, npz_rows
from guard.errors import DataError
from guard.fsio import NotRegularFile, open_regular
from guard.limits import describe, human_bytes, limit

ROW_FORMATS = {".csv": "csv", ".npz": "npz", ".npy": "npy"}
FORMATS = frozenset({*ROW_FORMATS.values(), "file"})
_READ_CHUNK = 1 << 20


class MissingFile(DataError):
    """A file the manifest lists (or the user named) that does not exist."""


@dataclass(frozen=True, slots=True)
class ArrayRecord:
    """One array of an ``.npz`` (or the array of an ``.npy``, named ``""``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    sha256: str
    rows: bytes  # the rows' digests, 32 bytes each

    @property
    def row_count(self) -> int:
        return len(self.rows) // DIGEST


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file: its name, size, SHA-256 and format (``csv``, ``npz``, ``npy`` or ``file``),
    with the header and row digests of a CSV, or the arrays of an ``.npz`` or ``.npy``."""

    path: str
    size: int
    sha256: str
    format: str
    header: str | None = None
    rows: bytes = b""
    arrays: tuple[ArrayRecord, ...] = ()

    @property
    def row_count(self) -> int:
        return len(self.rows) // DIGEST + sum(a.row_count for a in self.arrays)


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``guard data manifest`` records: files (sorted by path) and the folders given whole."""

    files: tuple[FileRecord, ...]
    folders: tuple[str, ...] = ()
    created: str = ""
    generator: str = ""

    @property
    def row_count(self) -> int:
        return sum(f.row_count for f in self.files)


@dataclass(frozen=True, slots=True)
class Measured:
    """A file as it is now; ``lines[i]`` is the line where CSV data row ``i`` starts."""

    record: FileRecord
    lines: array[int] | None = None
    header_line: int = 1


def format_of(path: Path) -> str:
    return ROW_FORMATS.get(path.suffix.lower(), "file")


def measure_file(path: Path, name: str, fmt: str, *, expected_sha256: str | None = None) -> Measured:
    """The file's record: SHA-256 and size, then (for a row format) its rows, all read through
    one descriptor. When the SHA-256 equals ``expected_sha256`` the rows are not read: the
    record then holds the size and SHA-256 only.

    Raises :class:`MissingFile` when there is no such file, :class:`DataError` (one line) when
    it is no regular file, unreadable, over its limit, malformed, or changed while read.
    """
    node = path
    for _ in Path(name).parts:  # the file, and each folder between it and the manifest's
        if node.is_symlink():  # a link could point anywhere: what is recorded is never read through one
            where = "is" if node == path else f"lies in {node.name}/, which is"
            raise DataError(f"{path}: {where} a symlink; Guard reads regular files only, "
                            "never through a link")
        node = node.parent
    try:
        fd, info = open_regular(path)
    except FileNotFoundError:
        raise MissingFile(f"{path}: no such file") from None
    except NotRegularFile as exc:
        raise DataError(f"{path}: is {exc.kind}, not a regular file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as handle:
        try:
            return _measure(path, name, fmt, handle, info, expected_sha256)
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _measure(path: Path, name: str, fmt: str, handle: io.BufferedReader, info: os.stat_result,
             expected_sha256: str | None) -> Measured:
    if fmt != "file" and info.st_size > limit("data_bytes"):
        raise DataError(f"{path}: {human_bytes(info.st_size)}, larger than the {describe('data_bytes')}")
    digest, size = hashlib.sha256(), 0
    buf = memoryview(bytearray(_READ_CHUNK))
    while size <= info.st_size and (n := handle.readinto(buf[: info.st_size + 1 - size])):
        digest.update(buf[:n])  # at most one byte past the size fstat gave: a growing file ends
        size += n
    sha256 = digest.hexdigest()
    measured = Measured(FileRecord(name, size, sha256, "file"))
    if fmt == "csv" and sha256 != expected_sha256:
        table = csv_rows(path, handle)
        record = FileRecord(name, size, sha256, fmt, None if table.header is None else table.header.hex(),
                            table.digests)
        measured = Measured(record, table.lines, table.header_line)
    elif fmt in ("npz", "npy") and sha256 != expected_sha256:
        found = npz_rows(path, handle) if fmt == "npz" else [npy_rows(path, handle)]
        arrays = tuple(ArrayRecord(a.name, a.dtype, a.shape, a.sha256, a.digests) for a in found)
        measured = Measured(FileRecord(name, size, sha256, fmt, arrays=arrays))
    after = os.fstat(handle.fileno())
    if (after.st_size, after.st_mtime_ns) != (info.st_size, info.st_mtime_ns) or size != info.st_size:
        raise DataError(f"{path}: changed while it was read; record it once nothing writes to it")
    return measured


# -- collecting the files ------------------------------------------------------------------------


def relative_name(path: Path, base: Path) -> str:
    """``path`` as a POSIX name relative to ``base`` (resolved), or a DataError."""
    try:
        name = path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        raise DataError(f"{path} lies outside {base.resolve()}, the manifest's folder; write the "
                        "manifest into a folder that holds the data (-o)") from None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{path}: its name is not UTF-8; rename it to record it") from None
    return name


def walk(folder: Path, skip: Callable[[Path], bool]) -> list[Path]:
    """Every entry under ``folder`` that is not a folder (files, links, special files), sorted;
    a link to a folder is listed, not followed. Version-control files are left out."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        parent = Path(root)
        links = [d for d in dirs if (parent / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES and d not in links)
        for entry in [*links, *files]:
            path = parent / entry
            if entry not in IGNORED_NAMES and not skip(path):
                found.append(path)
    return sorted(found)


def manifest_skip(manifest: Path) -> Callable[[Path], bool]:
    """Whether a path is the manifest itself or one of its writer's temp files."""
    target = manifest.resolve()
    prefix = f".{manifest.name}."

    def skip(path: Path) -> bool:
        resolved = path.parent.resolve() / path.name
        if resolved == target:
            return True
        temp = path.name.startswith(prefix) and path.name.endswith(".tmp")
        return temp and resolved.parent == target.parent

    return skip


def collect(paths: Sequence[Path], manifest: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """The files under ``paths`` as ``(name, path)`` sorted by name, and the folders' names."""
    base, skip = manifest.parent, manifest_skip(manifest)
    found: dict[str, Path] = {}
    folders: set[str] = set()
    for path in paths:
        if path.is_symlink():
            raise DataError(f"{path} is a symlink; record the file it points to")
        if path.is_dir():
            folders.add(relative_name(path, base) or ".")
            for entry in walk(path, skip):
                if entry.is_symlink() or not entry.is_file():
                    kind = "a symlink" if entry.is_symlink() else "not a regular file"
                    raise DataError(f"{entry} is {kind}; Guard records regular files only")
                found[relative_name(entry, base)] = entry
        elif path.exists():
            if skip(path):
                raise DataError(f"{path} is the manifest being written")
            found[relative_name(path, base)] = path
        else:
            raise MissingFile(f"{path}: no such file or folder")
    if not found:
        raise DataError("nothing to record: the paths hold no files")
    return sorted(found.items()), sorted(folders)


ProgressFn = Callable[[str, int, int], None]


def build_manifest(paths: Sequence[Path], manifest: Path, *, created: str = "", generator: str = "",
                   progress: ProgressFn | None = None) -> Manifest:
    """Record every file under ``paths`` for a manifest to be written at ``manifest``."""
    files, folders = collect([Path(p) for p in paths], Path(manifest))
    records: list[FileRecord] = []
    for i, (name, path) in enumerate(files):
        if progress is not None:
            progress(name, i, len(files))
        records.append(measure_file(path, name, format_of(path)).record)
    return Manifest(tuple(records), tuple(folders), created, generator)
