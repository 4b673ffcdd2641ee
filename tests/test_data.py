"""Data loading: good files load as validated arrays; every bad one is a one-line DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from guard.data import load_data, make_dataset
from guard.errors import DataError


def write_npz(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


X = np.arange(12, dtype=np.float32).reshape(4, 3) / 12
Y = np.array([0, 1, 2, 1])


def test_npz_with_train_data(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", x=X, y=Y, x_train=X[:2], y_train=Y[:2])
    data = load_data(path)
    np.testing.assert_array_equal(data.x_eval, X)
    assert data.y_eval.dtype == np.int64 and list(data.y_eval) == [0, 1, 2, 1]
    assert data.x_train is not None and data.x_train.shape == (2, 3)
    assert data.y_train is not None and data.feature_names is None


def test_npz_images_and_feature_names(tmp_path: Path) -> None:
    images = np.zeros((3, 1, 2, 2), dtype=np.float32)
    path = write_npz(tmp_path / "d.npz", x=images, y=np.array([0, 1, 0]))
    assert load_data(path).x_eval.shape == (3, 1, 2, 2)
    named = write_npz(tmp_path / "n.npz", x=X, y=Y, feature_names=np.array(["a", "b", "c"]))
    assert load_data(named).feature_names == ("a", "b", "c")


def test_whole_number_float_labels_are_accepted(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", x=X, y=Y.astype(np.float64))
    assert load_data(path).y_eval.dtype == np.int64


def test_integer_features_become_floats(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", x=np.ones((2, 2), dtype=np.int32), y=np.array([0, 1]))
    assert load_data(path).x_eval.dtype == np.float64


def test_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "age,label,income\n30,1,2.5\n41,0,3\n")
    data = load_data(path, label_column="label")
    np.testing.assert_array_equal(data.x_eval, [[30, 2.5], [41, 3]])
    assert list(data.y_eval) == [1, 0]
    assert data.feature_names == ("age", "income")
    assert data.x_train is None


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": X}, "missing array y"),
        ({"y": Y}, "missing array x"),
        ({"X": X, "x": X, "y": Y}, "unexpected arrays X"),
        ({"x": X, "y": Y[:3]}, "x has 4 samples but y has 3 labels"),
        ({"x": X[:0], "y": Y[:0]}, "x is empty"),
        ({"x": X[:, 0], "y": Y}, r"x must have a sample axis .* shape \(4,\)"),
        ({"x": X, "y": Y.reshape(2, 2)}, r"y must be 1-D class labels, got shape \(2, 2\)"),
        ({"x": X, "y": np.array([0, 1.5, 2, 1])}, "1 are not whole numbers"),
        ({"x": X, "y": np.array(["a", "b", "c", "d"])}, "y must hold integer class labels"),
        ({"x": np.array([["a"], ["b"], ["c"], ["d"]]), "y": Y}, "x must be numeric"),
        ({"x": np.where(X > 0.8, np.nan, X), "y": Y}, "x has 2 NaN values"),
        ({"x": np.where(X > 0.8, np.inf, X), "y": Y}, "x has 2 infinite values"),
        ({"x": X, "y": Y, "x_train": X}, "needs both x_train and y_train"),
        (
            {"x": X, "y": Y, "x_train": np.where(X == 0, np.nan, X), "y_train": Y},
            "x_train has 1 NaN values",
        ),
        ({"x": X, "y": Y, "x_train": X[:, :2], "y_train": Y}, r"x_train samples have shape \(2,\)"),
        ({"x": X, "y": Y, "feature_names": np.array(["a"])}, "1 feature names for 3 features"),
        ({"x": X, "y": Y, "feature_names": np.array([1, 2, 3])}, "feature_names must be"),
    ],
)
def test_bad_npz(tmp_path: Path, arrays: dict[str, np.ndarray], message: str) -> None:
    path = write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message) as caught:
        load_data(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "d.npz", x=np.array([[object()]] * 4, dtype=object), y=Y)
    with pytest.raises(DataError, match="object arrays"):
        load_data(path)


def test_truncated_npz(tmp_path: Path) -> None:
    full = write_npz(tmp_path / "full.npz", x=X, y=Y)
    path = tmp_path / "cut.npz"
    path.write_bytes(full.read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt"):
        load_data(path)


@pytest.mark.parametrize(
    ("text", "label", "message"),
    [
        ("a,label\n1,0\n", None, "needs --label-column"),
        ("a,b\n1,0\n", "label", "no column 'label'; columns are a, b"),
        ("a,label\n1,0\nx2,1\n", "label", "line 3, column 'a': 'x2' is not a number"),
        ("a,label\n1,0\n2,\n", "label", "line 3, column 'label': '' is not a number"),
        ("a,label\n1,0\n2\n", "label", "line 3 has 1 cells, header has 2"),
        ("", "label", "empty file"),
        ("a,label\n", "label", "x is empty"),
        ("a,label\nnan,0\n", "label", "x has 1 NaN values"),
        ("a,label\n1,0.5\n", "label", "not whole numbers"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, label: str | None, message: str) -> None:
    path = write_csv(tmp_path / "d.csv", text)
    with pytest.raises(DataError, match=message):
        load_data(path, label_column=label)


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.npz", "no such file"), ("data.parquet", "unsupported data format .parquet")],
)
def test_bad_paths(tmp_path: Path, name: str, message: str) -> None:
    path = tmp_path / name
    if name.endswith(".parquet"):
        path.write_bytes(b"PAR1")
    with pytest.raises(DataError, match=message):
        load_data(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        load_data(tmp_path)


def test_make_dataset_validates_in_memory_arrays() -> None:
    assert make_dataset(X, Y).x_eval.shape == (4, 3)
    with pytest.raises(DataError, match="x has 4 samples but y has 2 labels"):
        make_dataset(X, Y[:2])
