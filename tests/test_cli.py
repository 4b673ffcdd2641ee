"""The command line end to end, through click's CliRunner: exit codes, reports, bad input."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from guard.cli import cli
from guard.demo import DigitsCNN, digits_split, ensure_demo_files, train_cnn

FAST = ["--samples", "60", "--steps", "10", "--eps", "0.1"]


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    ensure_demo_files(cache / "demo-v1")
    return cache


@pytest.fixture(autouse=True)
def _cache_env(monkeypatch: pytest.MonkeyPatch, demo_cache: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("GUARD_CACHE_DIR", str(demo_cache))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.guard] around


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("user")
    split = digits_split()
    model = train_cnn(split, epochs=3)
    paths = {
        "state": folder / "cnn.pt",
        "safetensors": folder / "cnn.safetensors",
        "script": folder / "cnn.torchscript",
        "data": folder / "eval.npz",
    }
    torch.save(model.state_dict(), paths["state"])
    save_file(dict(model.state_dict()), str(paths["safetensors"]))
    torch.jit.save(torch.jit.script(model), str(paths["script"]))
    np.savez(paths["data"], x=split.x_test[:100], y=split.y_test[:100])
    return paths


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_help_everywhere() -> None:
    code, out = invoke("--help")
    assert code == 0 and "audit" in out
    code, out = invoke("audit", "--help")
    assert code == 0 and "--clip" in out and "--unsafe-allow-pickle" in out


def test_demo_writes_reports(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out = invoke("audit", "--demo", "--out", str(out_dir), "--attack", "pgd", *FAST)
    assert code == 0, out
    assert "digits-cnn" in out and "digits-svc" in out
    doc = json.loads((out_dir / "report.json").read_text())
    assert doc["schema"] == "guard.audit/1"
    audits = doc["audits"]
    assert [a["target"]["framework"] for a in audits] == ["torch", "sklearn"]
    for audit in audits:
        [ev] = [e for e in audit["evidence"] if e["probe"].startswith("evasion.")]
        scan = next(e for e in audit["evidence"] if e["probe"] == "supply_chain.scan")
        assert scan["metrics"]["critical"]["value"] == 0 and scan["metrics"]["high"]["value"] == 0
        assert ev["probe"] == "evasion.pgd" and ev["params"]["eps"] == 0.1
        robust = ev["metrics"]["robust_accuracy"]
        assert robust["n"] == 60 and robust["ci95"][0] <= robust["value"] <= robust["ci95"][1]
        assert audit["environment"]["seed"] == 0 and audit["environment"]["torch"]
    html = (out_dir / "report.html").read_text()
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")


def test_two_runs_agree(tmp_path: Path) -> None:
    docs = []
    for name in ("a", "b"):
        code, out = invoke("audit", "--demo", "--out", str(tmp_path / name), "--attack", "fgsm",
                           "--attack", "pgd", *FAST, "--format", "json")
        assert code == 0, out
        doc = json.loads((tmp_path / name / "report.json").read_text())
        docs.append([[e["metrics"] for e in a["evidence"]] for a in doc["audits"]])
    assert docs[0] == docs[1]


@pytest.mark.parametrize("kind", ["state", "safetensors", "script"])
def test_user_torch_model(kind: str, cnn_files: dict[str, Path], tmp_path: Path) -> None:
    arch = [] if kind == "script" else ["--arch", "guard.demo:DigitsCNN"]
    code, out = invoke("audit", "--model", str(cnn_files[kind]), *arch, "--data",
                       str(cnn_files["data"]), "--clip", "0,1", *FAST, "--out", str(tmp_path))
    assert code == 0, out
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["target"]["framework"] == "torch"
    digest = hashlib.sha256(cnn_files[kind].read_bytes()).hexdigest()
    assert doc["target"]["digests"]["model"] == f"sha256:{digest}"
    assert {e["probe"] for e in doc["evidence"]} == {  # the default probes of a model with gradients
        "supply_chain.encryption", "supply_chain.scan", "evasion.fgsm", "evasion.pgd", "evasion.apgd",
        "poisoning.model_scan", "extraction.copycat", "extraction.knockoff", "defense.sanitization"}


def test_config_file_and_flags_win(cnn_files: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "guard.toml"
    spec.write_text(
        f'model = "{cnn_files["safetensors"]}"\narch = "guard.demo:DigitsCNN"\n'
        f'data = "{cnn_files["data"]}"\nclip = [0, 1]\nattacks = ["fgsm"]\neps = [0.05, 0.1]\n'
        'samples = 40\nformat = ["json"]\n'
    )
    code, out = invoke("audit", "--config", str(spec), "--samples", "30", "--out", str(tmp_path / "o"))
    assert code == 0, out
    doc = json.loads((tmp_path / "o" / "report.json").read_text())
    evasion = [e for e in doc["evidence"] if e["probe"].startswith("evasion.")]
    assert [e["params"]["eps"] for e in evasion] == [0.05, 0.1]
    assert evasion[0]["metrics"]["robust_accuracy"]["n"] == 30
    assert not (tmp_path / "o" / "report.html").exists()


def test_pyproject_tool_guard_is_read(cnn_files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.guard]\nmodel = "{cnn_files["script"]}"\ndata = "{cnn_files["data"]}"\n'
        'clip = "0,1"\nattacks = ["fgsm"]\neps = 0.1\nsamples = 20\n'
    )
    code, out = invoke("audit", "--out", str(tmp_path / "o"))
    assert code == 0, out
    probes = [e["probe"] for e in json.loads((tmp_path / "o" / "report.json").read_text())["evidence"]]
    assert probes[-1] == "evasion.fgsm"


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _bad_inputs(tmp: Path, files: dict[str, Path]) -> dict[str, tuple[list[str], str]]:
    data = str(files["data"])
    model = ["--model", str(files["script"])]
    split = digits_split()
    np.savez(tmp / "nan.npz", x=np.full((5, 1, 8, 8), np.nan, np.float32), y=np.zeros(5, np.int64))
    np.savez(tmp / "labels.npz", x=split.x_test[:5], y=np.array([0, 1, 2, 3, 42]))
    np.savez(tmp / "shape.npz", x=split.x_test[:5].reshape(5, 64)[:, :10], y=split.y_test[:5])
    np.savez(tmp / "range.npz", x=split.x_test[:5] * 16, y=split.y_test[:5])
    (tmp / "model.pkl").write_bytes(pickle.dumps(_Payload(tmp / "pwned")))
    (tmp / "garbage.pt").write_bytes(b"not a model at all")
    (tmp / "bad.toml").write_text("samples = [1, 2\n")
    return {
        "missing model": (["--model", str(tmp / "nope.pt"), "--data", data, "--clip", "0,1"], "nope.pt"),
        "missing data": ([*model, "--data", str(tmp / "nope.npz"), "--clip", "0,1"], "nope.npz"),
        "no clip": ([*model, "--data", data], "--clip"),
        "bad clip": ([*model, "--data", data, "--clip", "1,0"], "clip"),
        "nan": ([*model, "--data", str(tmp / "nan.npz"), "--clip", "0,1"], "NaN"),
        "labels": ([*model, "--data", str(tmp / "labels.npz"), "--clip", "0,1"], "42"),
        "shape": ([*model, "--data", str(tmp / "shape.npz"), "--clip", "0,1"], "shape"),
        "range": ([*model, "--data", str(tmp / "range.npz"), "--clip", "0,1"], "range"),
        "attack": ([*model, "--data", data, "--clip", "0,1", "--attack", "cw"], "unknown attack 'cw'"),
        "pickle": (["--model", str(tmp / "model.pkl"), "--data", data, "--clip", "0,1"],
                   "refused by the scan"),
        "pickle opt-in": (["--model", str(tmp / "model.pkl"), "--data", data, "--clip", "0,1",
                           "--unsafe-allow-pickle"], "refused by the scan"),
        "garbage": (["--model", str(tmp / "garbage.pt"), "--data", data, "--clip", "0,1"], "garbage.pt"),
        "config": (["--config", str(tmp / "bad.toml")], "bad.toml"),
        "eps": ([*model, "--data", data, "--clip", "0,1", "--eps", "-1"], "eps"),
    }


@pytest.mark.parametrize(
    "case", ["missing model", "missing data", "no clip", "bad clip", "nan", "labels", "shape",
             "range", "attack", "pickle", "pickle opt-in", "garbage", "config", "eps"],
)
def test_bad_input_is_one_line_exit_2(case: str, cnn_files: dict[str, Path], tmp_path: Path) -> None:
    args, needle = _bad_inputs(tmp_path, cnn_files)[case]
    code, out = invoke("audit", *args, "--out", str(tmp_path / "o"))
    assert code == 2, out
    assert needle.lower() in out.lower()
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and needle.lower() in errors[0].lower()
    assert not (tmp_path / "pwned").exists(), "the pickle's payload ran"
    assert not (tmp_path / "o" / "report.json").exists()


def test_internal_error_is_exit_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr("guard.audit.run_audit", boom)
    code, out = invoke("audit", "--demo", "--out", str(tmp_path))
    assert code == 3 and "internal error" in out and "kaboom" in out


def test_cli_import_stays_light() -> None:
    """guard --help must not pay for torch, ART or scikit-learn."""
    loaded = _imported_modules_of("guard.cli")
    assert not {"torch", "art", "sklearn"} & loaded


def _imported_modules_of(module: str) -> set[str]:
    import subprocess
    import sys

    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_demo_arch_is_digits_cnn() -> None:
    assert isinstance(DigitsCNN()(torch.zeros(2, 1, 8, 8)), torch.Tensor)


def test_benign_pickle_loads_only_with_opt_in_after_the_scan(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    split = digits_split(image=False)
    model = LogisticRegression(max_iter=300).fit(split.x_train, split.y_train)
    joblib.dump(model, tmp_path / "model.joblib")
    np.savez(tmp_path / "eval.npz", x=split.x_test[:50], y=split.y_test[:50])
    args = ["audit", "--model", str(tmp_path / "model.joblib"), "--data", str(tmp_path / "eval.npz"),
            "--clip", "0,1", *FAST, "--out", str(tmp_path / "o")]
    code, out = invoke(*args)
    assert code == 2 and "--unsafe-allow-pickle" in out
    code, out = invoke(*args, "--unsafe-allow-pickle")
    assert code == 0, out
    doc = json.loads((tmp_path / "o" / "report.json").read_text())
    scan = next(e for e in doc["evidence"] if e["probe"] == "supply_chain.scan")
    assert scan["metrics"]["low"]["value"] >= 1  # scikit-learn types: load with skops instead


def test_csv_data_and_skops_pipeline_unbounded(tmp_path: Path) -> None:
    import skops.io
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bunch = load_breast_cancer()
    x, y = bunch.data, bunch.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[:400], y[:400])
    skops.io.dump(model, tmp_path / "model.skops")
    header = ",".join([*(f"f{i}" for i in range(x.shape[1])), "target"])
    rows = np.column_stack([x[400:], y[400:]])
    np.savetxt(tmp_path / "eval.csv", rows, delimiter=",", header=header, comments="", fmt="%.10g")
    code, out = invoke("audit", "--model", str(tmp_path / "model.skops"),
                       "--data", str(tmp_path / "eval.csv"), "--label-column", "target",
                       "--clip", "none", "--attack", "pgd", "--eps", "0.5", "--out", str(tmp_path / "o"))
    assert code == 0, out
    doc = json.loads((tmp_path / "o" / "report.json").read_text())
    assert doc["target"]["input"]["clip"] is None
    [ev] = [e for e in doc["evidence"] if e["probe"] == "evasion.pgd"]
    assert ev["metrics"]["robust_accuracy"]["n"] == len(y) - 400


def test_torch_export_program(tmp_path: Path) -> None:
    split = digits_split()
    model = train_cnn(split, epochs=1)
    program = torch.export.export(model, (torch.as_tensor(split.x_test[:2]),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, tmp_path / "cnn.pt2")
    np.savez(tmp_path / "eval.npz", x=split.x_test[:40], y=split.y_test[:40])
    code, out = invoke("audit", "--model", str(tmp_path / "cnn.pt2"), "--data", str(tmp_path / "eval.npz"),
                       "--clip", "0,1", *FAST, "--attack", "pgd", "--out", str(tmp_path / "o"))
    assert code == 0, out
    doc = json.loads((tmp_path / "o" / "report.json").read_text())
    assert doc["target"]["model"]["format"] == "torch.export"
