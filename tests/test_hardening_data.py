"""Issue 10 (hardening) for data files, spec files, numeric settings and hopeless models.

Hand-made inputs, one per problem the issue names: each is a one-line error with exit 2 (or,
for a model that gets everything wrong, an honest robust accuracy of 0), never a traceback,
a RuntimeWarning, unbounded memory or an attack that never ends.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fuzzing import assert_handled

from guard.audit import AuditPlan, seeded
from guard.build import build_target_from_objects
from guard.cli import cli
from guard.config import load_spec, parse_toml
from guard.data import load_data, make_dataset
from guard.errors import ConfigError, DataError, GuardInputError
from guard.probes import Range, RunContext, build_probe, field_range, probe_class, probes

X = np.random.default_rng(0).random((40, 3)).astype(np.float32)
Y = (X[:, 0] > 0.5).astype(np.int64)


def npy(array: np.ndarray | None = None, *, header: dict[str, Any] | None = None, data: bytes = b"") -> bytes:
    """An .npy member: a real array, or a hand-written header followed by ``data``."""
    buffer = io.BytesIO()
    if header is None:
        np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
    else:
        np.lib.format.write_array_header_1_0(buffer, header)
        buffer.write(data)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small scikit-learn model (skops) over 3 features in [0, 1], and its data."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("files")
    model = LogisticRegression().fit(X, Y)
    skops.io.dump(model, folder / "m.skops")
    np.savez(folder / "d.npz", x=X, y=Y)
    np.savez(folder / "wrong.npz", x=X, y=1 - model.predict(X))
    return {"model": folder / "m.skops", "data": folder / "d.npz", "wrong": folder / "wrong.npz"}


def audit(files: dict[str, Path], out: Path, *args: str, data: str = "data") -> list[str]:
    """``guard audit`` of the small model, quick settings first (``args`` override them)."""
    return ["audit", "--model", str(files["model"]), "--data", str(files[data]), "--clip", "0,1",
            "--attack", "fgsm", "--samples", "10", "--eps", "0.1", "--format", "json",
            "--out", str(out), *args]


def load_error(path: Path, **kwargs: Any) -> str:
    """The one-line DataError ``load_data`` raises, checked to name the file; no RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as caught:
            load_data(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message, message
    return message


# -- 1. data files -------------------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.npz"
    os.mkfifo(path)
    return path


def test_fifo_device_and_oversized_data_are_refused_at_once(tmp_path: Path, fifo: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.perf_counter()
    assert "FIFO, device or socket" in load_error(fifo)
    assert "FIFO, device or socket" in load_error(Path("/dev/zero"))
    assert time.perf_counter() - start < 2
    path = write_zip(tmp_path / "d.npz", {"x.npy": npy(X), "y.npy": npy(Y)})
    monkeypatch.setenv("GUARD_LIMIT_DATA_BYTES", "1KiB")
    assert "larger than the 1 KiB (raise it with GUARD_LIMIT_DATA_BYTES)" in load_error(path)


def test_an_npz_bomb_is_refused_from_its_declared_sizes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    inflating = npy(header={"descr": "<f4", "fortran_order": False, "shape": (1 << 20, 8)},
                    data=bytes(32 << 20))
    bomb = write_zip(tmp_path / "bomb.npz", {"x.npy": inflating, "y.npy": npy(Y)}, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setenv("GUARD_LIMIT_ARRAY_BYTES", "8MiB")
    before, start = peak_rss(), time.perf_counter()
    assert "members inflate to 32.0 MiB, over the 8 MiB" in load_error(bomb)
    # a header declaring 10^12 rows over a few bytes of data: refused before allocating
    rows = write_zip(tmp_path / "rows.npz", {
        "x.npy": npy(header={"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)}, data=bytes(64)),
        "y.npy": npy(Y)})
    monkeypatch.delenv("GUARD_LIMIT_ARRAY_BYTES")
    message = load_error(rows)
    assert "x (1000000000000, 3) float64" in message and "over the 2 GiB" in message
    assert time.perf_counter() - start < 1 and peak_rss() - before < 16 << 20


@pytest.mark.parametrize(("content", "message"), [
    (b"just some text, x,y\n1,2\n", "not an .npz (zip) file"),
    (b"", "not an .npz (zip) file; it is empty"),
    (npy(X), "a .npy file (one array), not an .npz archive"),
    (b"PK\x03\x04 and then nothing", "corrupt or truncated .npz file"),
])
def test_a_file_that_is_no_npz_says_so(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    assert message in load_error(path)


def _header(descr: Any, shape: Any, fortran: Any = False) -> bytes:
    return npy(header={"descr": descr, "fortran_order": fortran, "shape": shape})


@pytest.mark.parametrize(("members", "message"), [
    ({"x.npy": _header("|O", (40, 3)), "y.npy": npy(Y)}, "x holds object arrays, which could run code"),
    ({"x.npy": _header([("a", "<f4")], (40,)), "y.npy": npy(Y)}, "store plain numeric arrays"),
    ({"x.npy": _header("<M8[s]", (40, 3)), "y.npy": npy(Y)}, "store plain numeric arrays"),
    ({"x.npy": _header("<f4", (40, -3)), "y.npy": npy(Y)}, "header declaring shape (40, -3)"),
    ({"x.npy": _header("<f4", (1,) * 40), "y.npy": npy(Y)}, "header declaring shape"),
    ({"x.npy": b"\x93NUMPY\x03\x00" + bytes(20), "y.npy": npy(Y)}, "uses .npy format 3.0"),
    ({"x.npy": b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n", "y.npy": npy(Y)},
     "x.npy is not a valid .npy array"),
    ({"x.npy": b"not numpy at all", "y.npy": npy(Y)}, "x.npy is not a valid .npy array"),
    ({"x.npy": _header("<f4", (40, 3)) + bytes(12), "y.npy": npy(Y)}, "x.npy is truncated"),
    ({"x.npy": npy(X), "y.npy": npy(Y), "notes.txt": b"hi"}, "unexpected arrays notes.txt"),
    ({"x.npy": npy(X), "y": npy(Y)}, "unexpected arrays y;"),
    ({f"m{i}.npy": b"" for i in range(100)}, "zip directory lists 100 members"),
    ({"x.npy": npy(X), "y.npy": npy(Y), "x_train.npy": npy(X[:, :0]), "y_train.npy": npy(Y)},
     r"x_train has no features: shape (40, 0)"),
])
def test_bad_npz_members(tmp_path: Path, members: dict[str, bytes], message: str) -> None:
    path = write_zip(tmp_path / "d.npz", members)
    assert message in load_error(path)


def test_duplicate_member_names(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is asked to write
        write_zip(path, {"x.npy": npy(X), "y.npy": npy(Y)})
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("y.npy", npy(Y))
    assert "two members named 'y.npy'" in load_error(path)


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": X[:, :0], "y": Y}, "x has no features: shape (40, 0)"),
    ({"x": X[:0], "y": Y[:0]}, "x is empty"),
    ({"x": np.where(X > 0.9, np.inf, X), "y": Y}, "infinite values"),
    ({"x": X.astype(np.float64) * 1e300, "y": Y}, "beyond float32's range"),
    ({"x": X, "y": np.where(Y == 1, 1e300, 0.0)}, "y holds a label of magnitude 1e+300"),
    ({"x": X, "y": np.where(Y == 1, 2**64 - 1, 0).astype(np.uint64)},
     "y holds label 18446744073709551615, above the largest class label"),
    ({"x": X, "y": Y + 0.25}, "are not whole numbers"),
    ({"x": X, "y": np.where(Y == 1, np.nan, 0.0)}, f"y has {int(Y.sum())} NaN values"),
])
def test_bad_values_are_one_line_without_warnings(tmp_path: Path, arrays: dict[str, np.ndarray],
                                                   message: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    assert message in load_error(path)


def test_big_endian_fortran_and_small_dtypes_load_native(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.npz", {"x.npy": npy(np.asfortranarray(X.astype(">f4"))),
                                          "y.npy": npy(Y.astype(">i2")),
                                          "feature_names.npy": npy(np.array(["a", "b", "c"], dtype=">U1"))},
                     zipfile.ZIP_DEFLATED)
    data = load_data(path)
    assert data.x_eval.dtype == np.float32 and data.x_eval.dtype.isnative
    np.testing.assert_array_equal(data.x_eval, X)
    assert data.y_eval.dtype == np.int64 and list(data.y_eval) == list(Y)
    assert data.feature_names == ("a", "b", "c")
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    half = write_zip(tmp_path / "h.npz", {"x.npy": npy(X.astype(">f2")), "y.npy": npy(Y.astype(">u1"))})
    assert load_data(half).x_eval.dtype == np.float64


def test_big_endian_data_reaches_a_torch_model(tmp_path: Path) -> None:
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    target = build_target_from_objects(module, X.astype(">f4"), Y.astype(">i8"), clip=(0.0, 1.0), name="be")
    [ev] = build_probe("fgsm", eps=(0.1,), samples=10).run(target, RunContext())
    assert ev.metrics["robust_accuracy"].n == 10
    torch.jit.save(torch.jit.script(module), str(tmp_path / "m.pt"))
    write_zip(tmp_path / "d.npz", {"x.npy": npy(X.astype(">f4")), "y.npy": npy(Y.astype(">i8"))})
    result = assert_handled(["audit", "--model", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d.npz"),
                             "--clip", "0,1", "--attack", "fgsm", "--samples", "10", "--eps", "0.1",
                             "--format", "json", "--out", str(tmp_path / "o")], allowed=(0,))
    assert "wrote" in result.result.output


@pytest.mark.parametrize(("text", "message"), [
    ("label\n0\n1\n", "x has no features: shape (2, 0)"),
    ("a,label\n", "x is empty"),
    ("a,label\n1,1e300\n", "label of magnitude 1e+300"),
    ("a,label\n1e300,0\n", "beyond float32's range"),
    ("a,label\ninf,0\n", "x has 1 infinite values"),
    ("a,label\n1,0.5\n", "not whole numbers"),
    ("a,label,label\n1,0,0\n", "2 columns are named 'label'"),
    ("a,label\n" + "1," * 5 + "0\n", "line 2 has 6 cells, header has 2"),
    ('a,label\n"1\n' + "2" * 200_000 + '",0\n', "cannot read CSV (field larger than field limit"),
])
def test_bad_csv(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(text)
    assert message in load_error(path, label_column="label")


def test_csv_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"a,label\n1,0\n\xff\xfe,1\n")
    assert "not UTF-8 text" in load_error(path, label_column="label")
    path.write_text("a,label\n" + "0.5,1\n" * 1000)
    monkeypatch.setenv("GUARD_LIMIT_ARRAY_BYTES", "1KiB")
    assert "more than 64 rows of 2 values, over the 1 KiB" in load_error(path, label_column="label")
    monkeypatch.delenv("GUARD_LIMIT_ARRAY_BYTES")
    monkeypatch.setattr("guard.data._MAX_CSV_LINE", 100)
    path.write_text("a,label\n" + "1" * 200 + ",0\n")
    assert "line 2 is longer than 100 characters" in load_error(path, label_column="label")


def test_csv_blank_lines_quotes_and_bom_are_read(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("\ufeffa,\"label\",b\n1,0,2\n\n\"3\",1,4\n")
    data = load_data(path, label_column="label")
    np.testing.assert_array_equal(data.x_eval, [[1, 2], [3, 4]])
    assert list(data.y_eval) == [0, 1] and data.feature_names == ("a", "b")


def test_in_memory_arrays_are_held_to_the_same_checks() -> None:
    with pytest.raises(DataError, match="no features"):
        make_dataset(np.zeros((3, 0)), np.zeros(3))
    assert make_dataset(X.astype(">f8"), Y).x_eval.dtype.isnative


# -- 2. spec files -------------------------------------------------------------------------------


def test_config_file_is_read_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = tmp_path / "guard.toml"
    os.mkfifo(pipe)
    start = time.perf_counter()
    for path in (pipe, Path("/dev/zero"), tmp_path):
        with pytest.raises(GuardInputError, match="not a regular file"):
            load_spec(path)
    assert time.perf_counter() - start < 2
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * 5000 + "\n")
    monkeypatch.setenv("GUARD_LIMIT_CONFIG_BYTES", "4KiB")
    with pytest.raises(GuardInputError, match="larger than the 4 KiB"):
        load_spec(big)


@pytest.mark.parametrize(("text", "message"), [
    ("a" + ".a" * 5000 + " = 1\n", "line 1 has 5000 dots outside strings"),
    ("".join(f"k{i}" + ".a" * 900 + " = 1\n" for i in range(30)), "27000 dots outside strings"),
    ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("steps = [1, 2\n", "not valid TOML"),
])
def test_toml_that_would_cost_too_much_to_parse(tmp_path: Path, text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        parse_toml(text, "guard.toml")
    assert time.perf_counter() - start < 2


def test_dots_in_strings_and_comments_do_not_count() -> None:
    text = 'name = "' + "." * 3000 + '"  # ' + "." * 3000 + "\nnote = '''\n" + "." * 3000 + "\n'''\n"
    assert parse_toml(text, "guard.toml")["name"] == "." * 3000


@pytest.mark.parametrize(("name", "text", "message"), [
    ("pyproject.toml", "tool = 5\n", "'tool' must be a table"),
    ("pyproject.toml", "[tool]\nguard = 'x'\n", "expected a table, got str"),
    ("guard.toml", "guard = 5\n", "expected a table, got int"),
    ("guard.toml", "steps = 'many'\n", "'steps' must be an integer"),
    ("guard.toml", "eps = [true]\n", "'eps' must be a number or a list"),
    ("guard.toml", "clip = [1]\n", "'clip' must be"),
    ("guard.toml", "probes = 5\n", "'probes' must be a table of tables"),
    ("guard.toml", "[probes.pgd]\nsteps = 1.5\n", "evasion.pgd.steps must be an integer"),
    ("guard.toml", "steps = 9223372036854775807\n", "steps must be a positive integer up to 100000"),
    ("guard.toml", "step_size = nan\n",
     "step_size must be positive and finite, from 1e-12 to 1e+09, got nan"),
    ("guard.toml", "seed = -1\n", "seed must be an integer from 0 to 4294967295, got -1"),
    ("guard.toml", "seed = 9223372036854775807\n", "seed must be an integer from 0 to 4294967295"),
])
def test_wrong_kinds_in_a_spec_file_are_one_line(files: dict[str, Path], tmp_path: Path, name: str, text: str,
                                                  message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / name
    spec.write_text(text)
    monkeypatch.chdir(tmp_path)
    code, out = invoke(*audit(files, tmp_path / "o", "--config", str(spec)))
    assert code == 2 and message in out, out


def test_a_broken_pyproject_is_not_guards_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guard.config import discover_pyproject

    (tmp_path / "pyproject.toml").write_text("tool = 5\n")
    assert discover_pyproject(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text("[tool.guard]\nsteps = 3\n")
    assert discover_pyproject(tmp_path) == tmp_path / "pyproject.toml"


# -- 3. numbers with ranges ----------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


BIG = str(2**63 - 1)


@pytest.mark.parametrize(("args", "message"), [
    (["--eps", "1e308"], "eps must be positive and finite, from 1e-12 to 1e+09, got 1e+308"),
    (["--eps", "1e-320"], "got 1e-320"),
    (["--eps", ",".join(["0.1"] * 65)], "eps: give at most 64 values, got 65"),
    (["--eps", "2"], "eps 2 is larger than the declared input range [0, 1] allows in the inf norm"),
    (["--steps", BIG], f"steps must be a positive integer up to 100000, got {BIG}"),
    (["--samples", BIG], "samples must be a positive integer up to 10000000"),
    (["--batch-size", BIG], "batch_size must be a positive integer up to 1000000"),
    (["--step-size", "1e-320"], "step_size must be positive and finite"),
    (["--seed", "-1"], "seed must be an integer from 0 to 4294967295, got -1"),
    (["--seed", str(2**63)], f"seed must be an integer from 0 to 4294967295, got {2**63}"),
    (["--set", f"hsj.queries={BIG}"], "queries must be an integer from 100 to 1000000"),
    (["--set", f"pgd.targets={BIG}"], "targets must be an integer from 0 to 1000"),
    (["--set", "pgd.eps=[nan]"], "eps must be positive and finite"),
])
def test_every_number_has_a_range_checked_before_any_work(files: dict[str, Path], args: list[str],
                                                          message: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    code, out = invoke(*audit(files, tmp_path / "o", "--attack", "pgd", "--attack", "hsj", *args))
    assert code == 2 and message in out, out
    assert [line for line in out.splitlines() if line.startswith("Error:")] == [out.strip().splitlines()[-1]]
    assert time.perf_counter() - start < 5 and not (tmp_path / "o" / "report.json").exists()


def test_every_numeric_setting_of_every_probe_declares_its_range() -> None:
    import dataclasses
    import typing

    checked = 0
    for cls in probes():
        hints = typing.get_type_hints(cls.settings_type)
        for f in dataclasses.fields(cls.settings_type):
            hint = hints[f.name]
            if hint in (int, float) or {int, float} & set(typing.get_args(hint)):  # float | None too
                assert isinstance(field_range(cls.settings_type, f.name), Range), (cls.id, f.name)
                checked += 1
    assert checked >= 20


def test_the_same_ranges_hold_for_python_callers() -> None:
    settings_type = probe_class("pgd").settings_type
    with pytest.raises(ConfigError, match="steps must be a positive integer up to 100000, got 1000000"):
        settings_type(steps=10**6)
    with pytest.raises(ConfigError, match="evasion.pgd: steps must be"):
        build_probe("pgd", steps=10**6)
    with pytest.raises(ConfigError, match="seed must be"):
        RunContext(seed=2**32)
    with pytest.raises(ConfigError, match="seed must be"), seeded(-1):
        pass
    with pytest.raises(ConfigError, match="seed must be"):
        AuditPlan(seed=True)
    assert Range(1, 10, integer=True).admits(10) and not Range(1, 10, integer=True).admits(2.0)
    assert not Range(0, 1).admits(float("nan")) and not Range(0, 1).admits(10**400)


# -- 4. a model that gets every sample wrong ------------------------------------------------------


@pytest.fixture(scope="module")
def hopeless(digits: dict[str, np.ndarray], logreg: Any) -> dict[str, Any]:
    """The digits models with every label moved to a class the model does not predict."""
    flat = digits["flat_test"][:40]
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        torch_pred = module(torch.as_tensor(flat)).argmax(1).numpy()
    return {
        "sklearn": build_target_from_objects(logreg, flat, (logreg.predict(flat) + 1) % 10,
                                             clip=(0.0, 1.0), name="sk"),
        "torch": build_target_from_objects(module, flat, (torch_pred + 1) % 10, clip=(0.0, 1.0), name="pt"),
    }


@pytest.mark.parametrize("framework", ["sklearn", "torch"])
@pytest.mark.parametrize(("attack", "extra"), [("fgsm", {}), ("pgd", {"steps": 3}), ("apgd", {"steps": 3}),
                                               ("hopskipjump", {"queries": 100})])
def test_a_model_that_gets_every_sample_wrong_has_robust_accuracy_zero(
        hopeless: dict[str, Any], framework: str, attack: str, extra: dict[str, Any]) -> None:
    probe = build_probe(attack, eps=(0.05, 0.1), samples=30, **extra)
    evidence = probe.run(hopeless[framework], RunContext())
    assert [ev.params["eps"] for ev in evidence] == [0.05, 0.1]
    for ev in evidence:
        robust = ev.metrics["robust_accuracy"]
        assert (robust.value, robust.n) == (0.0, 30)
        assert robust.ci95 is not None and robust.ci95[0] == 0.0 and 0.05 < robust.ci95[1] < 0.2
        assert ev.metrics["clean_accuracy"].value == 0.0 and "attack_success_rate" not in ev.metrics
        [flag] = ev.flags
        assert flag.code == "no_correct_samples" and "all 30 sampled inputs" in flag.detail
        assert flag.code in type(probe).emits.flags


def test_a_hopeless_model_through_the_cli(files: dict[str, Path], tmp_path: Path) -> None:
    assert_handled(audit(files, tmp_path / "o", "--attack", "pgd", "--samples", "20", "--steps", "2",
                         data="wrong"), allowed=(0,))
    [ev] = [e for e in json.loads((tmp_path / "o" / "report.json").read_text())["evidence"]
            if e["probe"] == "evasion.pgd"]
    assert ev["metrics"]["robust_accuracy"]["value"] == 0.0 and ev["metrics"]["robust_accuracy"]["n"] == 20
    assert [f["code"] for f in ev["flags"]] == ["no_correct_samples"]
