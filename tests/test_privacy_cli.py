"""``guard audit``'s options for the privacy probes, end to end: --budgets, --pii-data,
--quasi-identifiers, --sensitive, and the same keys in a [tool.guard] table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skops.io
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from guard.cli import cli
from guard.defenses.pii.synthetic import write_demo_table


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("privacy-cli")
    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:300], order[300:]
    model = LogisticRegression(max_iter=500).fit(x[train], y[train])
    paths = {"model": folder / "lr.skops", "data": folder / "eval.npz", "people": folder / "people.csv"}
    paths["model"].write_bytes(skops.io.dumps(model))
    np.savez(paths["data"], x=x[test], y=y[test], x_train=x[train], y_train=y[train])
    write_demo_table(paths["people"], rows=60, seed=1)
    return paths


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.guard] around


def audit(files: dict[str, Path], out: Path, *extra: str) -> tuple[int, str, dict]:
    args = ["audit", "--model", str(files["model"]), "--data", str(files["data"]), "--clip", "none",
            "--format", "json", "--out", str(out), "--no-progress", *extra]
    result = CliRunner().invoke(cli, args)
    report = out / "report.json"
    doc = json.loads(report.read_text()) if result.exit_code in (0, 1) and report.is_file() else {}
    return result.exit_code, result.output, doc


def one(doc: dict) -> dict:
    """The audit of the one target (report.json nests several under "audits")."""
    return doc["audits"][0] if "audits" in doc else doc


def evidence(doc: dict, probe: str) -> list[dict]:
    return [e for e in one(doc)["evidence"] if e["probe"] == probe]


def test_budgets_option_sets_every_extraction_probe(files: dict[str, Path], tmp_path: Path) -> None:
    code, out, doc = audit(files, tmp_path, "--attack", "extraction", "--attack", "knockoff",
                           "--budgets", "20,60", "--fail-on", "never")
    assert code == 0, out
    for probe in ("extraction.copycat", "extraction.knockoff"):
        assert [e["params"]["budget"] for e in evidence(doc, probe)] == [20, 60]


@pytest.mark.parametrize("bad", ["0", "-5", "ten", "5,,x"])
def test_bad_budgets_are_a_usage_error(files: dict[str, Path], tmp_path: Path, bad: str) -> None:
    code, out, _ = audit(files, tmp_path, "--attack", "extraction", "--budgets", bad)
    assert code == 2
    assert "--budgets" in out and "Traceback" not in out


def test_pii_options_reach_the_scan(files: dict[str, Path], tmp_path: Path) -> None:
    code, out, doc = audit(files, tmp_path, "--attack", "pii-scan", "--pii-data", str(files["people"]),
                           "--quasi-identifiers", "age,sex", "--sensitive", "diagnosis",
                           "--policy", "baseline", "--fail-on", "never")
    assert code == 0, out
    [scan] = evidence(doc, "data.pii_scan")
    assert scan["params"]["path"] == "people.csv"
    assert scan["params"]["quasi_identifiers"] == ["age", "sex"]
    assert scan["params"]["sensitive"] == "diagnosis"
    assert scan["metrics"]["pii_findings"]["value"] > 0
    assert "l_diversity" in scan["metrics"]
    failed = {f["control"] for f in one(doc)["findings"] if f["status"] == "fail"}
    assert {"GRD-DAT-01", "GRD-DAT-02"} <= failed


def test_a_missing_quasi_identifier_column_stops_the_audit(files: dict[str, Path], tmp_path: Path) -> None:
    code, out, _ = audit(files, tmp_path, "--attack", "pii-scan", "--pii-data", str(files["people"]),
                         "--quasi-identifiers", "no_such_column")
    assert code == 2, out
    assert "no_such_column" in out and "Traceback" not in out
    last = out.strip().splitlines()[-1]
    # one line naming a dozen of the table's columns, not all 32 (the path's length varies: an
    # xdist worker's temporary folder is longer)
    assert "and 20 more" in last and len(last) - len(str(files["people"])) < 260, last


def test_npz_data_is_not_scanned_without_a_table(files: dict[str, Path], tmp_path: Path) -> None:
    """A default audit of .npz data runs no PII scan (numeric arrays), and GRD-DAT-01 says
    not assessed rather than pass."""
    code, out, doc = audit(files, tmp_path, "--attack", "fgsm", "--samples", "20", "--policy", "baseline",
                           "--fail-on", "never")
    assert code == 0, out
    assert evidence(doc, "data.pii_scan") == []
    status = {f["control"]: f["status"] for f in one(doc)["findings"]}
    assert status["GRD-DAT-01"] == "not_assessed"


def test_config_file_keys(files: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "guard.toml"
    spec.write_text(f'attacks = ["extraction", "pii-scan"]\nbudgets = [30]\n'
                    f'pii_data = ["{files["people"]}"]\nquasi_identifiers = ["age"]\nfail_on = "never"\n')
    code, out, doc = audit(files, tmp_path, "--config", str(spec))
    assert code == 0, out
    assert [e["params"]["budget"] for e in evidence(doc, "extraction.copycat")] == [30]
    [scan] = evidence(doc, "data.pii_scan")
    assert scan["params"]["quasi_identifiers"] == ["age"]


def test_a_bad_config_budget_names_the_key(files: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "guard.toml"
    spec.write_text('attacks = ["extraction"]\nbudgets = [0]\n')
    code, out, _ = audit(files, tmp_path, "--config", str(spec))
    assert code == 2
    assert "budgets" in out and "Traceback" not in out
