"""``guard data verify``: which files, and which rows of them, changed since the manifest.

A file whose SHA-256 matches is unchanged, and its rows are not read again; for one that does
not, its rows are digested again and compared with the recorded ones. Rows are matched by
position after the longest common start and end; between those, when either side has at most
:data:`DIFF_WINDOW` rows, by a longest-matching diff (:mod:`difflib`), so one inserted row is one
added row and the rows after it stay unchanged; beyond it by position, the surplus reported as
added or removed. Rows are numbered from 0 (the data row index: ``np.loadtxt(skiprows=1)[i]``,
``a[i]``); a CSV row also gives the line it starts on in the current file (from 1).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.defenses.provenance.document import Signature, load
from guard.defenses.provenance.manifest import (
    FileRecord,
    Measured,
    MissingFile,
    manifest_skip,
    measure_file,
    walk,
)
from guard.defenses.provenance.rows import DIGEST
from guard.errors import DataError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KINDS = ("changed", "added", "removed", "missing")
DIFF_WINDOW = 4_000
MAX_KEPT = 10_000
"""Changes kept one by one (every change is counted): more than any report shows."""
_BLOCK = 4096


@dataclass(frozen=True, slots=True)
class Change:
    """One change: a whole file (``row`` and ``array`` None), an array, or one row."""

    file: str
    kind: str
    row: int | None = None
    array: str | None = None
    line: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "row": self.row, "kind": self.kind}
        out |= {k: v for k, v in (("array", self.array), ("line", self.line), ("detail", self.detail)) if v}
        return out

    def describe(self) -> str:
        """One line for people (not yet made terminal-safe: see :func:`guard.textsafe.visible`)."""
        where = f"{self.file}: array {self.array}" if self.array else self.file
        if self.row is None:
            return f"{where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")
        line = f" (line {self.line})" if self.line is not None else ""
        return f"{where} row {self.row}{line} {self.kind}" if self.array else \
            f"{where}: row {self.row}{line} {self.kind}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_data` found. ``changes`` holds the first :data:`MAX_KEPT` changes;
    ``changes_total`` counts them all. ``digests`` are the SHA-256s the manifest records."""

    manifest: Path
    signature: Signature
    files_checked: int
    files_changed: int
    rows_checked: int
    rows_changed: int
    changes: tuple[Change, ...]
    changes_total: int
    digests: frozenset[str]

    @property
    def verified(self) -> bool:
        return self.changes_total == 0

    @property
    def problem(self) -> str:
        if self.verified:
            return ""
        more = self.changes_total - 1
        return self.changes[0].describe() + (f" (and {more} more change{'s' * (more > 1)})" if more else "")


@dataclass(slots=True)
class _Tally:
    changes: list[Change] = field(default_factory=list)
    total: int = 0
    files_changed: int = 0
    rows_checked: int = 0
    rows_changed: int = 0

    def add(self, change: Change) -> None:
        self.total += 1
        if len(self.changes) < MAX_KEPT:
            self.changes.append(change)

    def rows(self, file: str, old: bytes, new: bytes, array: str | None = None,
             lines: Sequence[int] | None = None) -> int:
        """Diff two packed digest lists; record and return the rows changed, added or removed."""
        n = 0
        for kind, start, count in diff_rows(old, new):
            n += count
            self.total += count
            self.rows_checked += count if kind == "added" else 0
            room = min(count, MAX_KEPT - len(self.changes))
            for row in range(start, start + max(room, 0)):
                line = lines[row] if lines is not None and kind != "removed" else None
                self.changes.append(Change(file, kind, row, array, line))
        self.rows_changed += n
        return n


def verify_data(manifest: Path, public_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check every file and row the manifest at ``manifest`` lists, relative to its folder.

    Raises :class:`~guard.defenses.provenance.document.ManifestError` (exit 2) for a manifest
    that is not one, and :class:`~guard.defenses.crypto.VerificationError` (exit 1) when a
    ``public_key`` is given and the signature does not verify with it.
    """
    manifest = Path(manifest)
    recorded, signature = load(manifest, public_key)
    base, tally = manifest.parent, _Tally()
    for record in recorded.files:
        tally.rows_checked += record.row_count
        _check_file(tally, base, record)
    listed = {f.path for f in recorded.files}
    added = 0
    for name in _new_files(base, recorded.folders, manifest):
        if name not in listed:
            added += 1
            tally.files_changed += 1
            tally.add(Change(name, "added", detail="a new file in a recorded folder"))
    return VerifyReport(manifest, signature, len(recorded.files) + added, tally.files_changed,
                        tally.rows_checked, tally.rows_changed, tuple(tally.changes), tally.total,
                        frozenset(f.sha256 for f in recorded.files))


def _new_files(base: Path, folders: tuple[str, ...], manifest: Path) -> Iterator[str]:
    skip = manifest_skip(manifest)
    for folder in folders:
        root = base / folder
        if root.is_dir() and not root.is_symlink():
            for entry in walk(root, skip):
                name = entry.relative_to(base).as_posix()
                yield os.fsencode(name).decode("utf-8", "backslashreplace")


def _check_file(tally: _Tally, base: Path, record: FileRecord) -> None:
    path = base / record.path
    try:
        now = measure_file(path, record.path, record.format, expected_sha256=record.sha256)
    except MissingFile:
        tally.files_changed += 1
        tally.rows_changed += record.row_count
        tally.add(Change(record.path, "missing"))
        return
    except DataError as exc:
        tally.files_changed += 1
        tally.rows_changed += record.row_count
        detail = str(exc).removeprefix(f"{path}: ")
        tally.add(Change(record.path, "changed", detail=detail))
        return
    if now.record.sha256 == record.sha256:
        return
    tally.files_changed += 1
    before = tally.total
    if record.format == "csv":
        _compare_csv(tally, record, now)
    elif record.format in ("npz", "npy"):
        _compare_arrays(tally, record, now)
    else:
        tally.add(Change(record.path, "changed", detail="its SHA-256 differs"))
    if tally.total == before:
        tally.add(Change(record.path, "changed", detail="its bytes differ, every row is the same "
                         "(line endings, quoting or a re-save)"))


def _compare_csv(tally: _Tally, record: FileRecord, now: Measured) -> None:
    if now.record.header != record.header:
        tally.add(Change(record.path, "changed", line=now.header_line, detail="the header row"))
    tally.rows(record.path, record.rows, now.record.rows, lines=now.lines)


def _compare_arrays(tally: _Tally, record: FileRecord, now: Measured) -> None:
    current = {a.name: a for a in now.record.arrays}
    for old in record.arrays:
        label = old.name or None
        new = current.pop(old.name, None)
        if new is None:
            tally.rows_changed += old.row_count
            tally.add(Change(record.path, "removed", array=old.name or "(array)",
                             detail="no longer in the file"))
            continue
        if (old.sha256, old.dtype, old.shape) == (new.sha256, new.dtype, new.shape):
            continue
        layout_changed = (old.dtype, old.shape[1:]) != (new.dtype, new.shape[1:])
        if layout_changed:
            tally.add(Change(record.path, "changed", array=old.name or "(array)",
                             detail=f"dtype {old.dtype} shape {list(old.shape)} is now dtype {new.dtype} "
                             f"shape {list(new.shape)}"))
        if not tally.rows(record.path, old.rows, new.rows, array=label) and not layout_changed:
            tally.add(Change(record.path, "changed", array=old.name or "(array)", detail="its values"))
    for new in current.values():
        tally.rows_checked += new.row_count
        tally.rows_changed += new.row_count
        tally.add(Change(record.path, "added", array=new.name, detail=f"a new array of {new.row_count} rows"))


# -- diffing rows --------------------------------------------------------------------------------


def diff_rows(old: bytes, new: bytes) -> list[tuple[str, int, int]]:
    """Runs ``(kind, start, count)`` turning the packed digests ``old`` into ``new``: ``changed``
    and ``added`` count rows of ``new``, ``removed`` rows of ``old`` (see the module docstring)."""
    a, b = len(old) // DIGEST, len(new) // DIGEST
    prefix = _common(old, new, min(a, b), from_end=False)
    suffix = _common(old, new, min(a, b) - prefix, from_end=True)
    o_end, n_end = a - suffix, b - suffix
    runs: list[tuple[str, int, int]] = []
    if o_end - prefix == n_end - prefix or max(o_end, n_end) - prefix > DIFF_WINDOW:
        same = min(o_end, n_end) - prefix
        runs += _positional(old, new, prefix, prefix, same)
        if o_end - prefix > same:
            runs.append(("removed", prefix + same, o_end - prefix - same))
        elif n_end - prefix > same:
            runs.append(("added", prefix + same, n_end - prefix - same))
        return runs
    rows_a = [old[i * DIGEST: (i + 1) * DIGEST] for i in range(prefix, o_end)]
    rows_b = [new[j * DIGEST: (j + 1) * DIGEST] for j in range(prefix, n_end)]
    matcher = difflib.SequenceMatcher(None, rows_a, rows_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        i1, i2, j1, j2 = i1 + prefix, i2 + prefix, j1 + prefix, j2 + prefix
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        if paired:
            runs.append(("changed", j1, paired))
        if tag in ("replace", "delete") and i2 - i1 > paired:
            runs.append(("removed", i1 + paired, i2 - i1 - paired))
        if tag in ("replace", "insert") and j2 - j1 > paired:
            runs.append(("added", j1 + paired, j2 - j1 - paired))
    return runs


def _common(old: bytes, new: bytes, limit: int, *, from_end: bool) -> int:
    """How many rows ``old`` and ``new`` share at their start (or end), up to ``limit``."""
    a, b = len(old), len(new)

    def same(k: int, count: int) -> bool:  # rows k..k+count from the start or the end
        lo, hi = k * DIGEST, (k + count) * DIGEST
        if from_end:
            return old[a - hi: a - lo] == new[b - hi: b - lo]
        return old[lo:hi] == new[lo:hi]

    k = 0
    while k < limit and same(k, min(_BLOCK, limit - k)):
        k += min(_BLOCK, limit - k)
    while k < limit and same(k, 1):
        k += 1
    return k


def _positional(old: bytes, new: bytes, o_start: int, n_start: int, count: int) -> list[tuple[str, int, int]]:
    runs: list[tuple[str, int, int]] = []
    for k in range(count):
        i, j = (o_start + k) * DIGEST, (n_start + k) * DIGEST
        if old[i: i + DIGEST] != new[j: j + DIGEST]:
            if runs and runs[-1][1] + runs[-1][2] == n_start + k:
                runs[-1] = ("changed", runs[-1][1], runs[-1][2] + 1)
            else:
                runs.append(("changed", n_start + k, 1))
    return runs
