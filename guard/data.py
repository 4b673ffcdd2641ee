"""Evaluation and training data from ``.npz`` or ``.csv`` files, checked before any probe runs.

Attacks report numbers over these arrays; a NaN, a ragged label column or a misaligned
``x``/``y`` pair would turn into silently wrong robustness figures, so every such problem is a
one-line :class:`DataError` here.

Reading is bounded before anything is allocated (the limits are in :mod:`guard.limits`). The
file is opened without blocking and must be a regular file within ``data_bytes``. An ``.npz``
is read member by member by :mod:`guard.npz`: the zip directory's size, each member's declared
size, and each ``.npy`` header's shape and dtype are checked against ``array_bytes`` before an
array is read, so a small archive that inflates to gigabytes, or a header declaring 10^12 rows,
costs a header read. Object arrays (which could run code when read) are refused from their header. A CSV is
parsed line by line into blocks of floats and refused once its values pass ``array_bytes``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from guard.errors import DataError
from guard.fsio import NotRegularFile, open_regular
from guard.limits import describe, human_bytes, limit
from guard.npz import first_line as _first_line
from guard.npz import plain as _plain
from guard.npz import read_npz_arrays
from guard.npz import shown as _shown

_MAX_CSV_LINE = 4 << 20  # characters in one line of a CSV file
_CHECK_CHUNK = 1 << 22
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MAX_FLOAT_LABEL = 2**53  # the largest range of whole numbers a float64 holds exactly
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Dataset:
    """Validated arrays: ``x`` numeric with a sample axis, ``y`` 1-D int64 of the same length.

    ``sha256`` is the digest of the file the arrays were read from (None for in-memory ones),
    computed through the same descriptor, so the report's digest is of the bytes read.
    """

    x_eval: np.ndarray
    y_eval: np.ndarray
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None
    sha256: str | None = None


def load_data(path: Path, *, label_column: str | None = None) -> Dataset:
    """Read ``.npz`` (arrays x, y, optional x_train, y_train) or ``.csv`` (needs label_column)."""
    path = Path(path)
    with _open_regular(path) as handle:
        suffix = path.suffix.lower()
        if suffix not in (".npz", ".csv"):
            raise DataError(f"{path}: unsupported data format {suffix or '(none)'}; use .npz or .csv")
        if suffix == ".csv" and label_column is None:
            raise DataError(f"{path}: CSV data needs --label-column naming the label column")
        if suffix == ".npz":
            dataset = _load_npz(path, handle)
        else:
            dataset = _load_csv(path, handle, str(label_column))
        return replace(dataset, sha256=_sha256(path, handle))


def load_training_data(path: Path, *, label_column: str | None = None,
                       require_train: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """A training-set file: an ``.npz`` with ``x_train`` and ``y_train`` (else, unless
    ``require_train``, its ``x`` and ``y``), or a ``.csv`` (with ``label_column``). Returns
    inputs, labels and the SHA-256 of the bytes read; checked like every data file."""
    path = Path(path)
    with _open_regular(path) as handle:
        suffix = path.suffix.lower()
        if suffix == ".npz":
            dataset = _load_npz(path, handle, training=True)
        else:
            dataset = load_data(path, label_column=label_column)
            return dataset.x_eval, dataset.y_eval, str(dataset.sha256)
        digest = _sha256(path, handle)
    if dataset.x_train is not None and dataset.y_train is not None:
        return dataset.x_train, dataset.y_train, digest
    if require_train:
        raise DataError(f"{path} has no x_train/y_train arrays (the training set to check); save them "
                        "with numpy.savez(path, x_train=..., y_train=...)")
    return dataset.x_eval, dataset.y_eval, digest


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    feature_names: tuple[str, ...] | None = None,
) -> Dataset:
    """Validate in-memory arrays the same way as loaded ones (train data: both or neither)."""
    if (x_train is None) != (y_train is None):
        raise DataError("train data needs both x_train and y_train, or neither")
    x_eval, y_eval = _checked_pair(x, y, "x", "y")
    if x_train is not None and y_train is not None:
        x_train, y_train = _checked_pair(x_train, y_train, "x_train", "y_train")
        if x_train.shape[1:] != x_eval.shape[1:]:
            raise DataError(
                f"x_train samples have shape {x_train.shape[1:]}, x samples {x_eval.shape[1:]}"
            )
    if feature_names is not None:
        width = math.prod(x_eval.shape[1:])
        if len(feature_names) != width:
            raise DataError(f"{len(feature_names)} feature names for {width} features")
    return Dataset(x_eval, y_eval, x_train, y_train, feature_names)


# -- the file ------------------------------------------------------------------------------------


@contextmanager
def _open_regular(path: Path) -> Iterator[IO[bytes]]:
    """The data file, opened without blocking (a FIFO would wait for a writer) and checked
    through the descriptor to be a regular file within ``data_bytes``."""
    try:
        fd, info = open_regular(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except NotRegularFile as exc:
        if exc.kind == "a folder":
            raise DataError(f"{path}: is a directory") from None
        raise DataError(f"{path}: is {exc.kind}, not a regular file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror or exc})") from None
    try:
        if info.st_size > limit("data_bytes"):
            raise DataError(f"{path}: {human_bytes(info.st_size)} on disk, larger than the "
                            f"{describe('data_bytes')}")
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        try:
            yield handle
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _sha256(path: Path, handle: IO[bytes]) -> str:
    handle.seek(0)
    digest, total, cap = hashlib.sha256(), 0, limit("data_bytes")
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
        total += len(chunk)
        if total > cap:
            raise DataError(f"{path}: grew past the {describe('data_bytes')} while it was read")
    return digest.hexdigest()


# -- .npz ----------------------------------------------------------------------------------------


def _load_npz(path: Path, handle: IO[bytes], training: bool = False) -> Dataset:
    head = handle.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: a .npy file (one array), not an .npz archive of arrays x and y; "
                        "write one with numpy.savez(path, x=..., y=...)")
    if not head.startswith(b"PK"):
        raise DataError(f"{path}: not an .npz (zip) file" + ("; it is empty" if not head else ""))
    arrays = read_npz_arrays(path, handle, training=training)
    names = arrays.get("feature_names")
    if names is not None and names.dtype.kind != "U":
        raise DataError(f"{path}: feature_names must be an array of strings")
    try:
        if "x" not in arrays:  # a training-only file (training=True): its arrays stand in for both
            arrays = {**arrays, "x": arrays["x_train"], "y": arrays["y_train"]}
        return make_dataset(
            arrays["x"],
            arrays["y"],
            x_train=arrays.get("x_train"),
            y_train=arrays.get("y_train"),
            feature_names=None if names is None else tuple(str(n) for n in names.ravel()),
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


# -- .csv ----------------------------------------------------------------------------------------


def _load_csv(path: Path, handle: IO[bytes], label_column: str) -> Dataset:
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.reader(_bounded_lines(path, text))
    try:
        x, y, names = _parse_csv(path, reader, label_column)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (line {reader.line_num + 1})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: cannot read CSV ({_first_line(exc)})") from None
    finally:
        text.detach()  # the handle is closed by its opener
    try:
        return make_dataset(x, y, feature_names=names)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _bounded_lines(path: Path, text: IO[str]) -> Iterator[str]:
    cap, total, number = limit("data_bytes"), 0, 0
    while line := text.readline(_MAX_CSV_LINE + 1):
        number += 1
        total += len(line)
        if len(line) > _MAX_CSV_LINE:
            raise DataError(f"{path}: line {number} is longer than {_MAX_CSV_LINE} characters")
        if total > cap:
            raise DataError(f"{path}: grew past the {describe('data_bytes')} while it was read")
        yield line


def _parse_csv(path: Path, reader: Any, label_column: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    header_row = next(reader, None)
    if header_row is None:
        raise DataError(f"{path}: empty file, expected a header row")
    header = [name.strip() for name in header_row]
    if label_column not in header:
        shown = ", ".join(_plain(name) for name in header[:10])
        raise DataError(f"{path}: no column {_shown(label_column)}; columns are {shown}")
    if header.count(label_column) > 1:
        raise DataError(f"{path}: {header.count(label_column)} columns are named {_shown(label_column)}")
    width, label_at = len(header), header.index(label_column)
    max_rows = max(1, limit("array_bytes") // (8 * width))
    block_rows = max(1, min(4096, (16 << 20) // (8 * width)))
    blocks: list[np.ndarray] = []
    block, filled, rows = np.empty((block_rows, width)), 0, 0
    for row in reader:
        if not row:
            continue  # a blank line
        if len(row) != width:
            raise DataError(f"{path}: line {reader.line_num} has {len(row)} cells, header has {width}")
        if rows == max_rows:
            raise DataError(f"{path}: more than {max_rows} rows of {width} values, over the "
                            f"{describe('array_bytes')}")
        if filled == block_rows:
            blocks.append(block)
            block, filled = np.empty((block_rows, width)), 0
        try:
            block[filled] = [float(cell) for cell in row]
        except ValueError:
            j = next(j for j, cell in enumerate(row) if not _is_number(cell))
            raise DataError(f"{path}: line {reader.line_num}, column {_shown(header[j])}: "
                            f"{_shown(row[j])} is not a number") from None
        filled, rows = filled + 1, rows + 1
    blocks.append(block[:filled])
    x, y, at = np.empty((rows, width - 1)), np.empty(rows), 0
    blocks.reverse()
    while blocks:  # into the final arrays block by block: the values are never held twice
        part = blocks.pop()
        end = at + len(part)
        x[at:end, :label_at], x[at:end, label_at:] = part[:, :label_at], part[:, label_at + 1 :]
        y[at:end] = part[:, label_at]
        at = end
    return x, y, tuple(name for j, name in enumerate(header) if j != label_at)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# -- checks shared by files and in-memory arrays -------------------------------------------------


def _checked_pair(
    x: np.ndarray, y: np.ndarray, x_name: str, y_name: str
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{x_name} must be numeric, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(
            f"{x_name} must have a sample axis and feature axes, got shape {x.shape}"
        )
    if len(x) == 0:
        raise DataError(f"{x_name} is empty")
    if math.prod(x.shape[1:]) == 0:
        raise DataError(f"{x_name} has no features: shape {x.shape}")
    x = _float_features(x, x_name)
    if y.ndim != 1:
        raise DataError(f"{y_name} must be 1-D class labels, got shape {y.shape}")
    if len(y) != len(x):
        raise DataError(f"{x_name} has {len(x)} samples but {y_name} has {len(y)} labels")
    return x, _integer_labels(y, y_name)


def _float_features(x: np.ndarray, name: str) -> np.ndarray:
    """Finite floats within float32's range (attacks compute in float32), in native byte
    order; float32 and float64 are kept, every other numeric dtype becomes float64."""
    if x.dtype.kind == "f":
        n_nan, n_inf, peak = _value_stats(x)
        if n_nan or n_inf:
            raise DataError(f"{name} has {_non_finite(n_nan, n_inf)}")
        if peak > _FLOAT32_MAX:
            raise DataError(f"{name} has values up to {peak:.3g} in magnitude, beyond float32's range "
                            f"(±{_FLOAT32_MAX:.3g}), in which attacks compute")
        if x.dtype.itemsize in (4, 8):
            return x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("="))
    return x.astype(np.float64)


def _integer_labels(y: np.ndarray, name: str) -> np.ndarray:
    """Labels as int64; whole-number floats (as CSV gives them) are accepted."""
    if y.dtype.kind in "bi":
        return y.astype(np.int64)
    if y.dtype.kind == "u":
        if len(y) and int(y.max()) > _INT64_MAX:
            raise DataError(f"{name} holds label {int(y.max())}, above the largest class label 2**63-1")
        return y.astype(np.int64)
    if y.dtype.kind != "f":
        raise DataError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    n_nan, n_inf, peak = _value_stats(y)
    if n_nan or n_inf:
        raise DataError(f"{name} has {_non_finite(n_nan, n_inf)}")
    if peak > _MAX_FLOAT_LABEL:
        raise DataError(f"{name} holds a label of magnitude {peak:g}; class labels stored as floats must "
                        f"be whole numbers of at most 2**53 ({_MAX_FLOAT_LABEL})")
    fractional = y != np.round(y)
    if fractional.any():
        raise DataError(
            f"{name} must hold integer class labels; {int(fractional.sum())} are not whole "
            f"numbers (first: {y[fractional][0]})"
        )
    return y.astype(np.int64)


def _value_stats(a: np.ndarray) -> tuple[int, int, float]:
    """NaN count, infinity count and the largest finite magnitude, in chunks (no full-size
    temporary arrays)."""
    flat = np.ravel(a, order="K")
    n_nan = n_inf = 0
    peak = 0.0
    for start in range(0, flat.size, _CHECK_CHUNK):
        part = flat[start : start + _CHECK_CHUNK]
        finite = np.isfinite(part)
        if not finite.all():
            nan = int(np.isnan(part).sum())
            n_nan, n_inf = n_nan + nan, n_inf + int(part.size - finite.sum()) - nan
            part = part[finite]
        if part.size:
            peak = max(peak, float(np.abs(part).max()))
    return n_nan, n_inf, peak


def _non_finite(n_nan: int, n_inf: int) -> str:
    parts = [f"{n} {kind}" for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n]
    return " and ".join(parts) + " values"
