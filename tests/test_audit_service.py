"""The audit service: one gate for every renderer, probes that describe themselves, no
global state left behind, one --fail-on vocabulary."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from guard import audit as service
from guard.build import build_target_from_objects
from guard.cli import cli
from guard.errors import ConfigError
from guard.evidence import AuditResult, Evidence
from guard.policies.catalogue import load_catalogue
from guard.probes import probe_class, probes
from guard.stats import Metric

FAST = ["--samples", "40", "--steps", "5", "--eps", "0.3", "--attack", "pgd"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from guard.demo import digits_split, train_cnn

    folder = tmp_path_factory.mktemp("service")
    split = digits_split()
    model = train_cnn(split, epochs=2)
    paths = {"model": folder / "cnn.pt", "data": folder / "eval.npz"}
    torch.save(model.state_dict(), paths["model"])
    np.savez(paths["data"], x=split.x_test[:60], y=split.y_test[:60])
    return paths


def _audit(files: dict[str, Path], out: Path, *extra: str) -> tuple[int, str]:
    return run("audit", "--model", str(files["model"]), "--arch", "guard.demo:DigitsCNN", "--data",
               str(files["data"]), "--clip", "0,1", *FAST, "--format", "json,html", "--out", str(out),
               "--policy", "baseline", *extra)


def _verdict(html: str) -> str:
    match = re.search(r'<div class="verdict [a-z]+"><strong>([^<]+)</strong>', html)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("fail_on", ["critical", "high", "medium", "never"])
def test_exit_code_report_gate_and_html_verdict_agree(files: dict[str, Path], tmp_path: Path,
                                                      fail_on: str) -> None:
    # PGD at eps 0.3 on a two-epoch CNN fails the high robustness control (GRD-EVA-01);
    # only the level decides whether that fails the run, and every view must say the same.
    code, out = _audit(files, tmp_path, "--fail-on", fail_on)
    doc = json.loads((tmp_path / "report.json").read_text())
    gate = doc["gate"]
    failed = [f["control"] for f in doc["findings"] if f["status"] == "fail"]
    assert "GRD-EVA-01" in failed, failed
    assert gate["fail_on"] == fail_on
    assert code == (0 if gate["passed"] else 1), out
    assert gate["passed"] == (fail_on in ("critical", "never"))
    word = _verdict((tmp_path / "report.html").read_text())
    assert word == {"critical": "pass", "high": "fail", "medium": "fail", "never": "not gated"}[fail_on]
    assert f"gate --fail-on {fail_on}: {'pass' if gate['passed'] else 'fail'}" in out
    # guard report re-renders the same decision, and re-judged at another level decides anew
    code2, out2 = run("report", str(tmp_path / "report.json"), "--out", str(tmp_path / "again"))
    assert code2 == 0, out2
    assert _verdict((tmp_path / "again" / "report.html").read_text()) == word
    code3, _ = run("report", str(tmp_path / "report.json"), "--policy", "baseline", "--fail-on", "high",
                   "--out", str(tmp_path / "high"))
    assert code3 == 1
    assert _verdict((tmp_path / "high" / "report.html").read_text()) == "fail"


def test_one_fail_on_vocabulary(files: dict[str, Path], tmp_path: Path) -> None:
    for command in (["audit", "--demo"], ["scan", str(files["model"])],
                    ["report", str(tmp_path / "missing.json")]):
        code, out = run(*command, "--fail-on", "sometimes")
        assert code == 2
        assert "info|low|medium|high|critical|never" in out or all(
            level in out for level in service.FAIL_ON), out
    assert service.parse_fail_on("none") == "never"  # the old spelling still reads
    assert run("scan", str(files["model"]), "--fail-on", "none")[0] == 0


def test_report_with_null_metric_renders(tmp_path: Path) -> None:
    result = AuditResult(target={"name": "t", "framework": "sklearn", "model": {}},
                         evidence=[Evidence("evasion.fgsm", {"eps": 0.1, "norm": "inf"},
                                            {"robust_accuracy": Metric(float("nan"), n=3),
                                             "clean_accuracy": Metric(1.0, n=3)})],
                         environment={})
    from guard.reports import write_reports

    write_reports([result], tmp_path, ["json"])
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["evidence"][0]["metrics"]["robust_accuracy"]["value"] is None
    code, out = run("report", str(tmp_path / "report.json"), "--format", "html,md,sarif,junit",
                    "--out", str(tmp_path / "r"), "--policy", "baseline", "--fail-on", "never")
    assert code == 0, out
    assert "could not be evaluated" in (tmp_path / "r" / "report.html").read_text() or \
        "null" in (tmp_path / "r" / "report.html").read_text()


def test_global_random_state_is_untouched(logreg, digits) -> None:  # type: ignore[no-untyped-def]
    target = build_target_from_objects(logreg, digits["x_test"][:50], digits["y_test"][:50],
                                       clip=(0.0, 1.0), name="lr")
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = random.random(), np.random.random(), torch.rand(1).item()
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    plan = service.AuditPlan(attacks=("fgsm", "hopskipjump"),
                             probe_settings={"samples": 10, "eps": (0.1,)},
                             scoped={"evasion.hopskipjump": {"queries": 100}}, seed=7)
    service.audit([target], plan)
    after = random.random(), np.random.random(), torch.rand(1).item()
    assert after == before


def test_set_and_spec_tables_reach_one_probe(files: dict[str, Path], tmp_path: Path) -> None:
    spec = tmp_path / "guard.toml"
    spec.write_text("[probes.pgd]\nsteps = 3\ntargets = 0\n")
    code, out = run("audit", "--model", str(files["model"]), "--arch", "guard.demo:DigitsCNN", "--data",
                    str(files["data"]), "--clip", "0,1", "--samples", "20", "--eps", "0.1",
                    "--attack", "pgd", "--attack", "fgsm", "--config", str(spec),
                    "--set", "pgd.step_size=0.02", "--format", "json", "--out", str(tmp_path / "o"))
    assert code == 0, out
    ev = json.loads((tmp_path / "o" / "report.json").read_text())["evidence"]
    pgd = next(e for e in ev if e["probe"] == "evasion.pgd")
    fgsm = next(e for e in ev if e["probe"] == "evasion.fgsm")
    assert (pgd["params"]["steps"], pgd["params"]["targets"], pgd["params"]["step_size"]) == (3, 0, 0.02)
    assert fgsm["params"]["steps"] == 1  # a scoped setting never leaks to another probe
    for bad, message in (("pgd.stepz=3", "has no setting 'stepz'"), ("pgd.steps=many", "must be an integer"),
                         ("nosuch.steps=3", "unknown attack 'nosuch'"), ("steps=3", "PROBE.KEY=VALUE"),
                         ("pgd.steps=0", "steps must be a positive integer")):
        code, out = run("audit", "--demo", "--set", bad, "--out", str(tmp_path / "x"))
        assert code == 2, (bad, out)
        assert message in out, (bad, out)
        assert "Traceback" not in out


def test_catalogue_matches_what_probes_declare() -> None:
    catalogue = load_catalogue().evidence
    for cls in probes():
        spec = catalogue.get(cls.id)
        assert spec is not None, f"{cls.id} is missing from policies/catalogue/evidence.yaml"
        declared = cls.emits
        assert set(spec.metrics) == set(declared.metrics), cls.id
        assert set(spec.params) == set(declared.params), cls.id
        assert tuple(spec.key) == tuple(declared.key), cls.id
        assert set(spec.flags) == set(declared.flags), cls.id
        assert dataclasses.is_dataclass(cls.settings_type)


def test_probes_emit_only_what_they_declare(logreg, digits) -> None:  # type: ignore[no-untyped-def]
    from guard.probes import RunContext, build_probe

    lr = build_target_from_objects(logreg, digits["x_test"][:40], digits["y_test"][:40],
                                   clip=(0.0, 1.0), name="lr")
    runs = {"fgsm": {}, "pgd": {"steps": 3}, "apgd": {"steps": 3}, "hopskipjump": {"queries": 100}}
    for name, extra in runs.items():
        cls = probe_class(name)
        evidence = build_probe(name, samples=8, eps=(0.1,), **extra).run(lr, RunContext())
        for ev in evidence:
            assert ev.probe == cls.id
            assert set(ev.metrics) <= set(cls.emits.metrics), (name, set(ev.metrics) - set(cls.emits.metrics))
            assert set(ev.params) <= set(cls.emits.params), (name, set(ev.params) - set(cls.emits.params))
            assert {f.code for f in ev.flags} <= set(cls.emits.flags)


def test_plan_is_validated_before_any_work() -> None:
    with pytest.raises(ConfigError, match="seed"):
        service.AuditPlan(seed=-1)
    with pytest.raises(ConfigError, match="eps must be positive"):
        service.AuditPlan(probe_settings={"eps": (-1.0,)}).validate()
    with pytest.raises(ConfigError, match="inspects the model file"):
        service.AuditPlan(attacks=("scan",)).validate()


def test_settings_no_probe_takes_are_errors(logreg, digits) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="no probe of this audit has a setting 'sigmaa'"):
        service.AuditPlan(attacks=("fgsm",), probe_settings={"sigmaa": 1.0}).validate()
    # a probe named by --set is checked even when it does not run
    with pytest.raises(ConfigError, match="has no setting 'stepz'"):
        service.AuditPlan(attacks=("fgsm",), scoped={"evasion.pgd": {"stepz": 5}}).validate()
    from guard.testing import GuardSettings, audit_model

    with pytest.raises(ConfigError, match="no probe of this audit has a setting 'sigmaa'"):
        audit_model(logreg, (digits["x_test"][:20], digits["y_test"][:20]), GuardSettings(clip=(0.0, 1.0)),
                    attacks=["fgsm"], sigmaa=3)


def test_dotted_probe_tables_and_flags_over_files(files: dict[str, Path], tmp_path: Path) -> None:
    from guard.probes import scoped_settings

    # [probes.evasion.pgd] is TOML for nested tables; it still names the probe evasion.pgd
    assert scoped_settings({"evasion": {"pgd": {"steps": 3}}}, "f.toml") == {"evasion.pgd": {"steps": 3}}
    with pytest.raises(ConfigError, match=r"f.toml: \[probes.nosuch\]: unknown attack 'nosuch'"):
        scoped_settings({"nosuch": {"steps": 3}}, "f.toml")
    spec = tmp_path / "guard.toml"
    spec.write_text("[probes.pgd]\nsamples = 30\nsteps = 3\n")
    code, out = run("audit", "--model", str(files["model"]), "--arch", "guard.demo:DigitsCNN", "--data",
                    str(files["data"]), "--clip", "0,1", "--samples", "20", "--eps", "0.1", "--attack", "pgd",
                    "--config", str(spec), "--format", "json", "--out", str(tmp_path / "o"))
    assert code == 0, out
    [pgd] = json.loads((tmp_path / "o" / "report.json").read_text())["evidence"][-1:]
    assert (pgd["params"]["samples"], pgd["params"]["steps"]) == (20, 3)  # the flag wins over the file


def test_validity_checks_read_probe_traits() -> None:
    from guard.validity import add_validity_flags

    def ev(probe: str, robust: int) -> Evidence:
        metrics = {"robust_accuracy": Metric.proportion(robust, 100)}
        return Evidence(probe, {"eps": 0.1, "norm": "inf"}, metrics)

    strong, blackbox, single = ev("evasion.pgd", 60), ev("evasion.hopskipjump", 30), ev("evasion.fgsm", 40)
    add_validity_flags([strong, blackbox, single])
    assert {f.code for f in strong.flags} == {"blackbox_beats_whitebox", "single_step_beats_iterative"}
    assert probe_class("hopskipjump").traits == {"black-box"}
    assert probe_class("fgsm").traits == {"single-step"}


def test_probes_command_lists_every_probe() -> None:
    code, out = run("probes")
    assert code == 0
    for cls in probes():
        assert cls.id in out
    assert "queries=1000" in out
