"""skops files that run code when rebuilt are refused by ``guard scan``, ``guard audit`` and
``load_model``; real fitted models of every common kind still scan clean and load.

The malicious corpus hides a scipy.stats distribution (whose ``__setstate__`` execs the
``_parse_arg_template`` string from the file) at several depths, its template prefixed with
code that writes a canary file. Files are built by dumping real objects and editing
``schema.json``, or by writing the schema by hand (skops cannot dump rv_discrete objects, it
recurses, so the discrete ``binom_gen`` is in the hand-written one); nothing malicious is ever
loaded with trusted types, and every test checks the canary is still absent.
"""

from __future__ import annotations

import functools
import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import skops.io
from click.testing import CliRunner
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from guard.cli import cli
from guard.defenses.scan.context import Findings
from guard.defenses.scan.results import Severity
from guard.defenses.scan.skops import (
    MAX_DEPTH,
    scan_skops_schema,
    trusted_by_loader,
    trusted_types,
    untrusted_types,
)
from guard.errors import ModelLoadError, UnsafeModelError
from guard.models.loading import load_model

_TEMPLATE = "_parse_arg_template"


# ----------------------------------------------------------------------------- building files


def _payload(canary: Path) -> str:
    return f"import pathlib\npathlib.Path({str(canary)!r}).write_text('owned')\n"


def _edit_schema(data: bytes, edit: Callable[[Any], None]) -> bytes:
    """The skops zip ``data`` with ``edit`` applied to its parsed schema.json."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            body = src.read(name)
            if name == "schema.json":
                schema = json.loads(body)
                edit(schema)
                body = json.dumps(schema).encode()
            dst.writestr(name, body)
    return out.getvalue()


def _poison(canary: Path) -> Callable[[Any], None]:
    """Prefix every distribution's template (a JsonNode string) with code writing ``canary``."""
    def edit(schema: Any) -> None:
        hits = 0
        stack = [schema]
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                node = value.get(_TEMPLATE)
                if isinstance(node, dict) and node.get("__loader__") == "JsonNode":
                    node["content"] = json.dumps(_payload(canary) + json.loads(node["content"]))
                    hits += 1
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
        assert hits, "no distribution template to poison"
    return edit


def _json(value: Any) -> dict[str, Any]:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def _dict(content: dict[str, Any]) -> dict[str, Any]:
    str_type = {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"}
    return {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode",
            "content": content,
            "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
                          "content": [str_type] * len(content)}}


def _handmade(canary: Path) -> bytes:
    """A schema written from scratch: a LogisticRegression holding, in a list attribute, a bare
    ``binom_gen`` (an rv_discrete subclass) whose whole state is the poisoned template."""
    from skops.io._protocol import PROTOCOL

    dist = {"__class__": "binom_gen", "__module__": "scipy.stats._discrete_distns",
            "__loader__": "ObjectNode", "content": _dict({_TEMPLATE: _json(_payload(canary))})}
    root = {"__class__": "LogisticRegression", "__module__": "sklearn.linear_model._logistic",
            "__loader__": "ObjectNode",
            "content": _dict({"C": _json(1.0), "priors_": {
                "__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
                "content": [_json(0.5), dist]}}),
            "protocol": PROTOCOL, "_skops_version": skops.__version__}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(root))
    return out.getvalue()


def _iris() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x, y


def _malicious_models() -> dict[str, tuple[Any, str]]:
    """Name -> (object holding a real distribution, a type the scan must name)."""
    x, y = _iris()
    attr = LogisticRegression(max_iter=300).fit(x, y)
    attr.noise_ = stats.norm(0, 1)

    step = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=300))]).fit(x, y)
    step.steps.insert(1, ("noise", stats.uniform(0, 1)))

    voting = VotingClassifier([("lr", LogisticRegression(max_iter=300)),
                               ("tree", DecisionTreeClassifier(max_depth=2))]).fit(x, y)
    voting.estimators_[1].prior_ = stats.rv_histogram(np.histogram(x[:, 0], bins=5))

    stacking = StackingClassifier([("nb", GaussianNB())],
                                  final_estimator=LogisticRegression(max_iter=300), cv=2).fit(x, y)
    stacking.final_estimator_.calibration_ = stats.gamma(2.0)

    column = Pipeline([
        ("ct", ColumnTransformer([("num", StandardScaler(), [0, 1]), ("rest", "passthrough", [2, 3])])),
        ("clf", LogisticRegression(max_iter=300)),
    ]).fit(x, y)
    column.named_steps["ct"].transformers_[0][1].shift_ = stats.expon(scale=2.0)

    nested_value = LogisticRegression(max_iter=300).fit(x, y)
    nested_value.meta_ = {"priors": [1.0, {"dist": stats.lognorm(0.5)}]}

    return {
        "estimator_attribute": (attr, "scipy.stats._distn_infrastructure.rv_continuous_frozen"),
        "pipeline_step": (step, "scipy.stats._continuous_distns.uniform_gen"),
        "voting_member": (voting, "scipy.stats._continuous_distns.rv_histogram"),
        "stacking_final": (stacking, "scipy.stats._continuous_distns.gamma_gen"),
        "column_transformer_part": (column, "scipy.stats._continuous_distns.expon_gen"),
        "list_dict_value": (nested_value, "scipy.stats._continuous_distns.lognorm_gen"),
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, str]]:
    """Name -> (malicious file, its canary, a type it must be refused for)."""
    folder = tmp_path_factory.mktemp("evil")
    out: dict[str, tuple[Path, Path, str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (model, expect) in _malicious_models().items():
            canary = folder / f"{name}.canary"
            path = folder / f"{name}.skops"
            path.write_bytes(_edit_schema(skops.io.dumps(model), _poison(canary)))
            out[name] = (path, canary, expect)
    canary = folder / "handmade.canary"
    (folder / "handmade.skops").write_bytes(_handmade(canary))
    out["handmade_schema"] = (folder / "handmade.skops", canary,
                              "scipy.stats._discrete_distns.binom_gen")
    return out


@pytest.fixture(scope="module")
def eval_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x, y = _iris()
    path = tmp_path_factory.mktemp("data") / "eval.csv"
    np.savetxt(path, np.column_stack([x[::5], y[::5]]), delimiter=",", comments="", fmt="%.6g",
               header="f0,f1,f2,f3,label")
    return path


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.chdir(tmp_path)  # no pyproject.toml with [tool.guard] around


def _scan_cli(path: Path) -> tuple[int, list[dict[str, Any]], str]:
    result = CliRunner().invoke(cli, ["scan", str(path), "--format", "json"])
    try:
        findings = [f for doc in [json.loads(result.output)] for file in doc["files"]
                    for f in file["findings"]]
    except (ValueError, KeyError):
        findings = []
    return result.exit_code, findings, result.output


def _direct_scan(data: bytes) -> list[tuple[Severity, str, str]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = archive.read("schema.json")
    findings = Findings()
    scan_skops_schema(schema, "schema.json", findings)
    return [(f.severity, f.rule, f.global_name) for f in findings.as_tuple()]


# ----------------------------------------------------------------------------- malicious files

NAMES = ["estimator_attribute", "pipeline_step", "voting_member", "stacking_final",
         "column_transformer_part", "list_dict_value", "handmade_schema"]


@pytest.mark.parametrize("name", NAMES)
def test_scan_names_the_code_type(corpus: dict[str, tuple[Path, Path, str]], name: str) -> None:
    path, canary, expect = corpus[name]
    found = _direct_scan(path.read_bytes())
    assert any(sev >= Severity.HIGH and rule == "skops-code-type" and g == expect
               for sev, rule, g in found), found
    assert any(rule == "skops-untrusted-type" and g == expect for _, rule, g in found)
    assert expect in untrusted_types(zipfile.ZipFile(path).read("schema.json"))
    assert not canary.exists()


@pytest.mark.parametrize("name", NAMES)
def test_cli_scan_flags_malicious(corpus: dict[str, tuple[Path, Path, str]], name: str) -> None:
    path, canary, expect = corpus[name]
    code, findings, out = _scan_cli(path)
    assert code == 1, out
    assert any(f["global"] == expect for f in findings), out
    assert not canary.exists()


@pytest.mark.parametrize("name", NAMES)
def test_load_model_refuses(corpus: dict[str, tuple[Path, Path, str]], name: str) -> None:
    path, canary, expect = corpus[name]
    with pytest.raises(UnsafeModelError, match=r"refused.*" + expect.rpartition(".")[2]):
        load_model(path)
    assert not canary.exists()


@pytest.mark.parametrize("name", ["estimator_attribute", "pipeline_step", "stacking_final",
                                  "list_dict_value", "handmade_schema"])
def test_audit_refuses(corpus: dict[str, tuple[Path, Path, str]], eval_csv: Path, tmp_path: Path,
                       name: str) -> None:
    path, canary, _ = corpus[name]
    result = CliRunner().invoke(cli, [
        "audit", "--model", str(path), "--data", str(eval_csv), "--label-column", "label",
        "--clip", "none", "--samples", "20", "--attack", "fgsm", "--format", "json",
        "--out", str(tmp_path / "out")])
    assert result.exit_code not in (0, 3), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "refused" in errors[0], result.output
    assert not canary.exists()


# ----------------------------------------------------------------------------- benign models


def _benign(kind: str) -> Any:
    x, y = _iris()
    if kind == "logreg":
        return LogisticRegression(max_iter=300).fit(x, y)
    if kind == "svc":
        return SVC(probability=False).fit(x, y)
    if kind == "svc_sparse":  # support_vectors_ is a csr_matrix when fitted on sparse data
        return SVC().fit(sp.csr_matrix(x), y)
    if kind == "random_forest_random_state":
        return RandomForestClassifier(n_estimators=4, max_depth=3,
                                      random_state=np.random.RandomState(0)).fit(x, y)
    if kind == "gradient_boosting":
        xb, yb = load_breast_cancer(return_X_y=True)
        return GradientBoostingClassifier(n_estimators=4, max_depth=2).fit(xb[:200], yb[:200])
    if kind == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=4).fit(x, y)
    if kind == "pipeline_pca":
        return make_pipeline(StandardScaler(), PCA(2), LogisticRegression(max_iter=300)).fit(x, y)
    if kind == "column_transformer":
        return Pipeline([
            ("ct", ColumnTransformer([("num", StandardScaler(), [0, 1]),
                                      ("cat", OneHotEncoder(handle_unknown="ignore"), [2, 3])])),
            ("clf", LogisticRegression(max_iter=300)),
        ]).fit(np.round(x), y)
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, random_state=0).fit(x, y)
    if kind == "kneighbors":
        return KNeighborsClassifier(3).fit(x, y)
    if kind == "function_transformer_log1p":
        return make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=300)).fit(x, y)
    if kind == "generator_and_sparse_attributes":
        model = LogisticRegression(max_iter=300).fit(x, y)
        model.random_state = np.random.default_rng(0)
        model.sparse_matrix_ = sp.csr_matrix(np.eye(3))
        model.sparse_array_ = sp.csc_array(np.eye(3))
        return model
    raise AssertionError(kind)


BENIGN = ["logreg", "svc", "svc_sparse", "random_forest_random_state", "gradient_boosting",
          "hist_gradient_boosting", "pipeline_pca", "column_transformer", "mlp", "kneighbors",
          "function_transformer_log1p", "generator_and_sparse_attributes"]


@pytest.mark.parametrize("kind", BENIGN)
def test_benign_scans_clean_and_loads(tmp_path: Path, kind: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _benign(kind)
    path = tmp_path / f"{kind}.skops"
    skops.io.dump(model, path)
    assert _direct_scan(path.read_bytes()) == []
    assert untrusted_types(zipfile.ZipFile(path).read("schema.json")) == []
    code, findings, out = _scan_cli(path)
    assert code == 0, out
    assert not [f for f in findings if Severity.parse(f["severity"]) >= Severity.MEDIUM], findings
    loaded = load_model(path)
    assert (loaded.framework, loaded.format) == ("sklearn", "skops")
    x, _ = _iris()
    if kind == "gradient_boosting":
        x = load_breast_cancer(return_X_y=True)[0][:20]
    elif kind == "column_transformer":
        x = np.round(x)
    elif kind == "svc_sparse":
        x = sp.csr_matrix(x)
    assert (loaded.obj.predict(x) == model.predict(x)).all()


# ----------------------------------------------------------------------------- the list itself


def test_trusted_list_is_named_and_excludes_code_types() -> None:
    names = trusted_types()
    assert len(names) > 400
    assert "sklearn.linear_model._logistic.LogisticRegression" in trusted_by_loader()["ObjectNode"]
    assert "sklearn.tree._tree.Tree" in trusted_by_loader()["TreeNode"]
    assert "numpy.log1p" in trusted_by_loader()["FunctionNode"]
    for name in names:
        parts = name.split(".")
        assert all(p.isidentifier() for p in parts), name  # exact names, no patterns
        assert not {"testing", "_testing", "tests", "externals"} & set(parts), name
        assert not name.startswith("scipy.stats"), name
        assert "PyFuncDistance" not in name and not name.startswith(("builtins.eval", "os.")), name
    assert "sklearn.callback._scoring_monitor.ScoringMonitor" not in names
    # a type is trusted for its own loader only: a LogisticRegression is no constructor call
    assert "sklearn.linear_model._logistic.LogisticRegression" not in trusted_by_loader()[
        "ConstructorFromReduceNode"]


def _add_attribute(name: str, node: dict[str, Any]) -> Callable[[Any], None]:
    """An edit giving the root estimator one more attribute (and its key type)."""
    def edit(schema: Any) -> None:
        state = schema["content"]
        state["content"][name] = node
        state["key_types"]["content"].append(
            {"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode"})
    return edit


@functools.cache
def _lr_bytes() -> bytes:
    x, y = _iris()
    return skops.io.dumps(LogisticRegression(max_iter=300).fit(x, y))


def test_trusted_type_under_a_calling_loader_is_refused(tmp_path: Path) -> None:
    """skops would pass this (trusted= applies to every loader); Guard checks loader by loader."""
    node = {"__class__": "Pipeline", "__module__": "sklearn.pipeline",
            "__loader__": "ConstructorFromReduceNode",
            "content": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                        "content": [_json([])]}}
    path = tmp_path / "m.skops"
    path.write_bytes(_edit_schema(_lr_bytes(), _add_attribute("extra_", node)))
    assert "sklearn.pipeline.Pipeline" in untrusted_types(zipfile.ZipFile(path).read("schema.json"))
    with pytest.raises(UnsafeModelError, match="sklearn.pipeline.Pipeline"):
        load_model(path)


def test_builtin_command_as_function_is_critical(tmp_path: Path) -> None:
    x, y = _iris()
    model = make_pipeline(FunctionTransformer(os.system), LogisticRegression(max_iter=300))
    model.steps[1][1].fit(x, y)  # never fitted or run as a whole: os.system must not be called
    data = skops.io.dumps(model)
    found = _direct_scan(data)
    assert any(sev == Severity.CRITICAL and g.endswith(".system") for sev, _, g in found), found
    path = tmp_path / "m.skops"
    path.write_bytes(data)
    with pytest.raises(UnsafeModelError, match="system"):
        load_model(path)


@pytest.mark.parametrize("schema", [b"{not json", b"[1, 2]", b'{"a": 1}',
                                    b'{"__loader__": "ObjectNode", "protocol": true}'])
def test_malformed_schema(schema: bytes) -> None:
    findings = Findings()
    scan_skops_schema(schema, "schema.json", findings)
    assert [(f.severity, f.rule) for f in findings.as_tuple()] == [(Severity.MEDIUM, "malformed-archive")]
    with pytest.raises(ValueError):
        untrusted_types(schema)


def test_too_deep_schema_is_refused_before_skops_reads_it(tmp_path: Path) -> None:
    node = _json(0)
    for _ in range(MAX_DEPTH):
        node = {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
                "content": [node]}
    data = _edit_schema(_lr_bytes(), _add_attribute("deep_", node))
    found = _direct_scan(data)
    assert (Severity.MEDIUM, "malformed-archive", "") in found
    path = tmp_path / "m.skops"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match="deeper"):
        load_model(path)
