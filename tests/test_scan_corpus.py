"""The red-team corpus (``tests/scan_corpus``) and the format fixtures, end to end.

Every malicious file, of every class and format, is rated high or critical by ``guard scan``
and refused by ``guard audit`` with a clear one-line error, with and without
``--unsafe-allow-pickle``; the canary its payload would touch never appears. Every benign file,
made by the real libraries, scans clean, and models of every format Guard loads audit normally.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from scan_corpus import CorpusFile, write_corpus
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from guard.cli import cli
from guard.defenses.scan import Severity, scan_file
from guard.demo import DigitsCNN

FIXTURES = Path(__file__).parent / "data" / "scan"
FIXTURE_MALICIOUS = {  # format fixtures a loader would let run code, read files or call Python
    "keras_config_get_file.json", "keras_config_module_import.json", "keras_config_os_system.json",
    "keras_config_string_lookup.json", "keras_config_tfsmlayer.json", "keras_config_torch_wrapper.json",
    "keras_config_unsafe_deserialization.json", "keras_lambda.h5", "keras_lambda.keras",
    "keras_lambda_userblock.h5", "onnx_ep_context_path.onnx", "onnx_external_absolute.onnx",
    "onnx_external_in_subgraph.onnx", "onnx_external_traversal.onnx", "tf_asset_traversal_saved_model.pb",
    "tf_file_ops_saved_model.pb", "tf_frozen_graph_pyfunc.pb", "tf_hidden_function_saved_model.pb",
    "tf_keras_metadata_lambda.pb", "tf_keras_object_lambda_saved_model.pb", "tf_pyfunc_saved_model.pb",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[CorpusFile], Path]:
    folder = tmp_path_factory.mktemp("corpus")
    canary = folder / "CANARY"
    return write_corpus(folder / "files", canary), canary


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = load_iris(return_X_y=True)
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    rows = ["a,b,c,d,label"] + [",".join(f"{v:g}" for v in row) + f",{t}"
                                for row, t in zip(x, y, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def malicious(corpus: tuple[list[CorpusFile], Path]) -> list[Path]:
    files, _ = corpus
    return [f.path for f in files if f.kind == "malicious"] + sorted(FIXTURES / n for n in FIXTURE_MALICIOUS)


def test_corpus_has_every_class(corpus: tuple[list[CorpusFile], Path]) -> None:
    files, _ = corpus
    classes = {f.klass for f in files if f.kind == "malicious"}
    assert {"pickle-start", "sniff-forgery", "numpy-joblib", "indirect-callable", "classic"} <= classes
    assert sum(f.kind == "benign" for f in files) >= 20


def test_every_malicious_file_rates_high(corpus: tuple[list[CorpusFile], Path]) -> None:
    missed = []
    for path in malicious(corpus):
        result = scan_file(path)
        if not result.fails(Severity.HIGH):
            missed.append((path.name, [(f.severity.label, f.rule, f.global_name) for f in result.findings]))
    assert not missed, missed
    assert not corpus[1].exists()


def test_no_benign_file_rates_medium_or_worse(corpus: tuple[list[CorpusFile], Path]) -> None:
    files, _ = corpus
    benign = [f.path for f in files if f.kind == "benign"]
    benign += [p for p in FIXTURES.iterdir() if p.suffix != ".py" and p.name not in FIXTURE_MALICIOUS
               and "custom" not in p.name]  # a custom Keras layer or ONNX op is medium: look at it
    alarms = {}
    for path in benign:
        result = scan_file(path)
        if result.status != "clean":
            alarms[path.name] = [(f.severity.label, f.rule, f.global_name) for f in result.findings]
    assert not alarms, alarms


def test_large_file_paths_find_the_same(corpus: tuple[list[CorpusFile], Path],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every corpus file and fixture scanned as a large file would be (a zip read on demand,
    anything else mapped in a child) gives exactly the findings of the in-memory scan."""
    from guard.defenses.scan import scanner

    files, _ = corpus
    paths = [f.path for f in files] + sorted(p for p in FIXTURES.iterdir() if p.is_file())
    small = {p: scan_file(p) for p in paths}
    monkeypatch.setattr(scanner, "_READ_WHOLE", 0)
    for p in paths:
        large = scan_file(p)
        assert (large.format, large.findings) == (small[p].format, small[p].findings), p


def test_audit_refuses_every_malicious_file(corpus: tuple[list[CorpusFile], Path], iris_csv: Path,
                                            tmp_path: Path) -> None:
    runner = CliRunner()
    wrong = []
    for path in malicious(corpus):
        for unsafe in ([], ["--unsafe-allow-pickle"]):
            result = runner.invoke(cli, ["audit", "--model", str(path), "--data", str(iris_csv),
                                         "--label-column", "label", "--clip", "none", "--samples", "20",
                                         "--attack", "fgsm", "--format", "json", "--out",
                                         str(tmp_path / "out"), *unsafe])
            lines = [ln for ln in result.output.splitlines() if ln.strip()]
            if result.exit_code != 2 or len(lines) != 1 or "refused" not in lines[0]:
                wrong.append((path.name, unsafe, result.exit_code, result.output[-300:]))
    assert not wrong, wrong
    assert not corpus[1].exists(), "a payload ran"
    assert not (tmp_path / "out").exists()


def _iris_model() -> tuple[LogisticRegression, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(x, y), x


@pytest.mark.parametrize("fmt", ["pkl", "joblib", "joblib-zlib", "joblib-lz4", "skops"])
def test_benign_sklearn_files_audit_normally(fmt: str, iris_csv: Path, tmp_path: Path) -> None:
    model, _ = _iris_model()
    path = tmp_path / f"model.{fmt.split('-')[0]}"
    if fmt == "pkl":
        path.write_bytes(pickle.dumps(model))
    elif fmt == "skops":
        skops.io.dump(model, path)
    else:
        compress = {"joblib": 0, "joblib-zlib": ("zlib", 3), "joblib-lz4": "lz4"}[fmt]
        if fmt == "joblib-lz4":
            pytest.importorskip("lz4")
        joblib.dump(model, path, compress=compress)
    unsafe = [] if fmt == "skops" else ["--unsafe-allow-pickle"]
    result = CliRunner().invoke(cli, ["audit", "--model", str(path), "--data", str(iris_csv),
                                      "--label-column", "label", "--clip", "none", "--samples", "20",
                                      "--attack", "fgsm", "--eps", "0.1", "--format", "json",
                                      "--out", str(tmp_path / "out"), *unsafe])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize("fmt", ["state-dict", "legacy-state-dict", "safetensors", "torchscript", "pt2"])
def test_benign_torch_files_audit_normally(fmt: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = DigitsCNN().eval()
    x = np.random.default_rng(0).random((30, 1, 8, 8), dtype=np.float32)
    y = net(torch.as_tensor(x)).argmax(1).numpy()
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    path = tmp_path / ("model.safetensors" if fmt == "safetensors" else "model.pt2" if fmt == "pt2"
                       else "model.pt")
    if fmt == "state-dict":
        torch.save(net.state_dict(), path)
    elif fmt == "legacy-state-dict":
        torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    elif fmt == "safetensors":
        save_file(net.state_dict(), path)
    elif fmt == "torchscript":
        torch.jit.save(torch.jit.trace(net, torch.as_tensor(x[:2])), path)
    else:
        torch.export.save(torch.export.export(net, (torch.as_tensor(x[:2]),),
                                              dynamic_shapes={"x": {0: torch.export.Dim("batch")}}), path)
    assert scan_file(path).status == "clean"
    arch = [] if fmt in ("torchscript", "pt2") else ["--arch", "guard.demo:DigitsCNN"]
    result = CliRunner().invoke(cli, ["audit", "--model", str(path), *arch, "--data",
                                      str(tmp_path / "eval.npz"), "--clip", "0,1", "--samples", "20",
                                      "--attack", "fgsm", "--eps", "0.1",
                                      "--format", "json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
