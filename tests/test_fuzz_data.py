"""Property tests: data files (.npz, .csv) and spec files (guard.toml) fed to the real CLI.

Each example writes one generated file and runs the cheapest ``guard audit`` that reads and
validates it all the way: a small scikit-learn model (skops) over 3 features, FGSM on a few
samples, a JSON report. The .npz files are zip archives of members that are real arrays of
any dtype (big-endian, float16, complex, strings, bytes, values up to 1e300, NaN), hand-made
headers (object, structured and datetime dtypes, negative or 10^12-sized shapes, data cut
short) or plain bytes, stored or deflated, sometimes truncated. The CSV files mix numbers,
words, NaN, 1e300, empty cells, quotes, blank lines, a BOM and bytes that are no UTF-8. The
spec files hold every key of ``guard audit`` with values of any TOML kind. Whatever comes out
must end as :func:`tests.fuzzing.assert_handled` says: exit 0, 1 or 2, one line, no
traceback, within the time and memory budget.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import FUZZ, assert_handled
from hypothesis import given
from hypothesis import strategies as st

from guard.config import AuditOptions


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((40, 3))
    path = tmp_path_factory.mktemp("model") / "m.skops"
    skops.io.dump(LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int)), path)
    return path


def audit(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["audit", "--model", str(model), "--data", str(data), "--clip", "none", "--attack", "fgsm",
            "--samples", "4", "--eps", "0.1", "--format", "json", "--no-progress", "--out", str(out), *extra]


# -- .npz ----------------------------------------------------------------------------------------

DTYPES = ["<f4", ">f4", "<f8", ">f8", "<f2", "<i8", ">i2", "|u1", "<u8", "|b1", "<c8", "<U3", "|S2"]
SHAPES = st.one_of(
    st.tuples(st.integers(0, 6), st.sampled_from([3, 3, 3, 0, 1, 4])),  # mostly what the model takes
    st.lists(st.integers(0, 4), max_size=4).map(tuple),
)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@st.composite
def arrays(draw: st.DrawFn, dtypes: list[str] = DTYPES, shapes: st.SearchStrategy[Any] = SHAPES) -> bytes:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(shapes)
    values = np.random.default_rng(draw(st.integers(0, 9))).random(shape)
    values = values * draw(st.sampled_from([1.0, 1.0, 1.0, 2.0, 1e30, 1e300]))
    if draw(st.integers(0, 3)) == 0 and values.size:
        values.flat[0] = draw(st.sampled_from([math.nan, math.inf, -1.0, 2.5, 2.0**64]))
    with np.errstate(all="ignore"):
        array = values.astype(str).astype(dtype) if dtype.kind in "US" else values.astype(dtype)
    return npy(np.asfortranarray(array) if draw(st.booleans()) else array)


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    descr = draw(st.sampled_from(["<f4", ">f8", "|O", "<M8[s]", "(2,)<f4", "<V4", [("a", "<f4")]]))
    shape = draw(st.lists(st.sampled_from([0, 1, 3, 40, -1, 10**12, 2**62]), max_size=3).map(tuple))
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": draw(st.booleans()),
                                                  "shape": shape})
    return buffer.getvalue() + draw(st.binary(max_size=64))


FEATURES = arrays(dtypes=["<f4", ">f4", "<f8", ">f8", "<f2", "<i8", "|u1"],
                  shapes=st.tuples(st.integers(1, 8), st.just(3)))
LABELS = st.one_of(
    st.lists(st.sampled_from([0, 1]), min_size=1, max_size=8).map(lambda v: npy(np.array(v, dtype=">i8"))),
    st.lists(st.sampled_from([0.0, 1.0, 0.5, 1e300, 2.0, -1.0, math.nan]), min_size=1, max_size=8)
    .map(lambda v: npy(np.array(v))),
    arrays(shapes=st.tuples(st.integers(0, 8))),
)
MEMBER = st.one_of(arrays(), headers(), st.binary(max_size=80),
                   st.binary(max_size=40).map(lambda b: b"\x93NUMPY\x01\x00" + b))
NAMES = st.sampled_from(["x.npy", "y.npy", "x_train.npy", "y_train.npy", "feature_names.npy", "z.npy",
                         "x", "dir/x.npy"])


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    """x and y that mostly fit the model, with up to two members replaced, added or removed."""
    members = {"x.npy": draw(FEATURES), "y.npy": draw(LABELS)}
    for _ in range(draw(st.integers(0, 2))):
        name = draw(NAMES)
        if draw(st.integers(0, 4)) == 0:
            members.pop(name, None)
        else:
            members[name] = draw(st.one_of(MEMBER, FEATURES, LABELS))
    buffer = io.BytesIO()
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    data = buffer.getvalue()
    cut = draw(st.sampled_from([None, None, None, None, 0.5, 0.9]))
    return data if cut is None else data[: int(len(data) * cut)]


@FUZZ
@given(content=st.one_of(npz_files(), npz_files(), npz_files(), st.binary(max_size=100)))
def test_any_npz_file(model: Path, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    assert_handled(audit(model, path, tmp_path / "o"))


# -- .csv ----------------------------------------------------------------------------------------

NUMBERS = st.sampled_from(["0", "1", "0.5", "0.25", "0.75", "1", "0", " 1 ", '"1"', "3e-1"])
CELLS = st.one_of(
    NUMBERS, NUMBERS,
    st.sampled_from(["nan", "inf", "-inf", "1e300", "1e-320", "2", "1.5", "", "abc", "1_0", "0x1",
                     "18446744073709551615"]),
    st.text(max_size=4),
)
COLUMNS = st.sampled_from(["a", "b", "c", "d", "label", "", " label", '"x,y"', "é"])


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    fits = st.sampled_from([["a", "b", "c", "label"], ["label", "a", "b", "c"], ["a", "label", "b", "c"]])
    header = draw(fits if draw(st.integers(0, 3)) else st.lists(COLUMNS, max_size=5))
    width = len(header)
    row = st.lists(NUMBERS, min_size=width, max_size=width)
    odd = st.lists(CELLS, min_size=width, max_size=width) | st.lists(CELLS, max_size=6)
    rows = draw(st.lists(row if draw(st.booleans()) else st.one_of(row, row, row, odd), max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    text = newline.join(",".join(cells) for cells in [header, *rows])
    data = (draw(st.sampled_from(["", "\ufeff"])) + text).encode("utf-8")
    return data + draw(st.sampled_from([b"", b"", b"", b"", b"", b"\n", b"\xff\xfe,1\n", b"\x00"]))


@FUZZ
@given(content=csv_files())
def test_any_csv_file(model: Path, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    assert_handled(audit(model, path, tmp_path / "o", "--label-column", "label"))


# -- guard.toml ----------------------------------------------------------------------------------

INTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 3, 2**32, 2**63 - 1]),
                st.integers(1, 5))
FLOATS = st.one_of(st.floats(), st.sampled_from([0.1, 0.05, 1e-320, 1e308, 0.0]))
WORDS = st.one_of(st.text(st.characters(codec="ascii", exclude_characters="/\\\x00"), max_size=8),
                  st.sampled_from(["inf", "2", "pgd", "fgsm", "json", "baseline", "high", "never", "0,1",
                                   "none", "x.npz"]))
SCALARS = st.one_of(st.booleans(), INTS, FLOATS, WORDS)
TOML_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.sampled_from(["steps", "eps", "x"]), inner, max_size=2),
                           max_leaves=5)
TYPED = {"steps": INTS, "samples": INTS, "batch_size": INTS, "seed": INTS, "eps": FLOATS | st.lists(FLOATS),
         "step_size": FLOATS, "targets": INTS, "queries": INTS, "norm": WORDS, "early_stop": st.booleans(),
         "policy": st.lists(WORDS, max_size=2), "attacks": st.lists(WORDS, max_size=2),
         "clip": st.lists(FLOATS), "unsafe_allow_pickle": st.booleans(),
         **dict.fromkeys(["fail_on", "name", "arch", "label_column", "waivers", "baseline", "key", "key_env",
                          "passphrase_env", "verify_with", "manifest", "model", "data"], WORDS)}
"""The kind each key takes, drawn more often than any other: values that reach the ranges."""
KEYS = sorted({f.name for f in fields(AuditOptions)} - {"probes", "out", "format"}
              | {"bogus", "thresholds", "steps-x"})
SETTING_KEYS = ["steps", "eps", "samples", "targets", "queries", "step_size", "norm", "early_stop",
                "batch_size", "bogus"]


def value_for(key: str) -> st.SearchStrategy[Any]:
    typed = TYPED.get(key)
    return TOML_VALUES if typed is None else st.one_of(typed, typed, TOML_VALUES)


@st.composite
def tables(draw: st.DrawFn, keys: list[str], most: int) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(keys), max_size=most, unique=True))
    return {key: draw(value_for(key)) for key in chosen}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) \
            else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


@st.composite
def spec_files(draw: st.DrawFn) -> str:
    lines = [f"{key} = {toml_value(value)}" for key, value in draw(tables(KEYS, 4)).items()]
    probe_names = st.sampled_from(["pgd", "fgsm", "fgsm", "hsj", "nosuch", "scan"])
    for probe in draw(st.lists(probe_names, max_size=2, unique=True)):
        values = draw(tables(SETTING_KEYS, 3))
        lines.append(f"[probes.{probe}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    text = "\n".join(lines) + "\n"
    if draw(st.booleans()):
        text = "[guard]\n" + text
    tails = ["", "", "", "", "", "", "x = [1, 2\n", "a" + ".a" * 2000 + " = 1\n",
             "z = " + "[" * 2000 + "]" * 2000]
    return text + draw(st.sampled_from(tails))


@FUZZ
@given(text=spec_files())
def test_any_spec_file(model: Path, tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths the file names stay in the example's folder
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).random((20, 3)), y=np.arange(20) % 2)
    spec = tmp_path / "guard.toml"
    spec.write_text(text)
    assert_handled(audit(model, tmp_path / "d.npz", tmp_path / "o", "--config", str(spec)))
