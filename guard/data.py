"""Evaluation and training data from ``.npz`` or ``.csv`` files, checked before any probe runs.

Attacks report numbers over these arrays; a NaN, a ragged label column or a misaligned
``x``/``y`` pair would turn into silently wrong robustness figures, so every such problem is a
one-line :class:`DataError` here. ``.npz`` files are read with ``allow_pickle=False``: an
object array in them could run code, and is refused.
"""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guard.errors import DataError

_NPZ_KEYS = frozenset({"x", "y", "x_train", "y_train", "feature_names"})


@dataclass(frozen=True, slots=True)
class Dataset:
    """Validated arrays: ``x`` numeric with a sample axis, ``y`` 1-D int64 of the same length."""

    x_eval: np.ndarray
    y_eval: np.ndarray
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    feature_names: tuple[str, ...] | None = None


def load_data(path: Path, *, label_column: str | None = None) -> Dataset:
    """Read ``.npz`` (arrays x, y, optional x_train, y_train) or ``.csv`` (needs label_column)."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "no such file"
        raise DataError(f"{path}: {problem}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".csv":
        if label_column is None:
            raise DataError(f"{path}: CSV data needs --label-column naming the label column")
        return _load_csv(path, label_column)
    raise DataError(f"{path}: unsupported data format {suffix or '(none)'}; use .npz or .csv")


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
        width = int(np.prod(x_eval.shape[1:]))
        if len(feature_names) != width:
            raise DataError(f"{len(feature_names)} feature names for {width} features")
    return Dataset(x_eval, y_eval, x_train, y_train, feature_names)


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"{path}: holds object arrays, which could run code when read; store "
                "numeric arrays"
            ) from exc
        raise DataError(f"{path}: corrupt .npz file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path}: corrupt or truncated .npz file ({exc})") from exc
    unknown = sorted(set(arrays) - _NPZ_KEYS)
    if unknown:
        raise DataError(
            f"{path}: unexpected arrays {', '.join(unknown)}; expected x, y and optionally "
            "x_train, y_train, feature_names"
        )
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing array {' and '.join(missing)}")
    names = arrays.get("feature_names")
    if names is not None and names.dtype.kind != "U":
        raise DataError(f"{path}: feature_names must be an array of strings")
    try:
        return make_dataset(
            arrays["x"],
            arrays["y"],
            x_train=arrays.get("x_train"),
            y_train=arrays.get("y_train"),
            feature_names=None if names is None else tuple(str(n) for n in names.ravel()),
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


def _load_csv(path: Path, label_column: str) -> Dataset:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: empty file, expected a header row")
    header = [name.strip() for name in rows[0]]
    if label_column not in header:
        raise DataError(
            f"{path}: no column {label_column!r}; columns are {', '.join(header[:10])}"
        )
    label_at = header.index(label_column)
    values = np.empty((len(rows) - 1, len(header)), dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        line = i + 2  # 1-based, after the header: what an editor shows
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} cells, header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: line {line}, column {header[j]!r}: {cell!r} is not a number"
                ) from None
    features = [j for j in range(len(header)) if j != label_at]
    try:
        return make_dataset(
            values[:, features],
            values[:, label_at],
            feature_names=tuple(header[j] for j in features),
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc


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
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    bad = _count_non_finite(x)
    if bad:
        raise DataError(f"{x_name} has {bad}")
    if y.ndim != 1:
        raise DataError(f"{y_name} must be 1-D class labels, got shape {y.shape}")
    if len(y) != len(x):
        raise DataError(f"{x_name} has {len(x)} samples but {y_name} has {len(y)} labels")
    return x, _integer_labels(y, y_name)


def _count_non_finite(a: np.ndarray) -> str:
    n_nan = int(np.isnan(a).sum())
    n_inf = int(np.isinf(a).sum())
    parts = [f"{n} {kind}" for n, kind in ((n_nan, "NaN"), (n_inf, "infinite")) if n]
    return " and ".join(parts) + " values" if parts else ""


def _integer_labels(y: np.ndarray, name: str) -> np.ndarray:
    """Labels as int64; whole-number floats (as CSV gives them) are accepted."""
    if y.dtype.kind in "biu":
        return y.astype(np.int64)
    if y.dtype.kind != "f":
        raise DataError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    bad = _count_non_finite(y)
    if bad:
        raise DataError(f"{name} has {bad}")
    fractional = y != np.round(y)
    if fractional.any():
        raise DataError(
            f"{name} must hold integer class labels; {int(fractional.sum())} are not whole "
            f"numbers (first: {y[fractional][0]})"
        )
    return y.astype(np.int64)
