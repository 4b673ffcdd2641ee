"""The policy engine on synthetic evidence: every shipped pack loads, every control passes on
good evidence and fails on bad, missing evidence is never a pass, thresholds, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from policy_fixtures import FIXTURES, audit, evasion, metric

from guard.errors import ConfigError
from guard.evidence import AuditResult, Finding
from guard.policies import (
    Control,
    PolicyError,
    ThresholdOverrides,
    available_packs,
    evaluate,
    exit_code_for,
    load_catalogue,
    load_pack,
    load_thresholds,
)
from guard.policies.controls import Control as ControlType
from guard.serialization import evidence_from_dict

SHIPPED = ["baseline", "ccpa", "eu-ai-act", "gdpr", "mitre-atlas", "nist-ai-rmf", "owasp-ml"]
CONTROLS = load_pack("baseline").controls
FRAMEWORK_OF_PACK = {"gdpr": "gdpr", "ccpa": "ccpa", "eu-ai-act": "eu_ai_act", "owasp-ml": "owasp_ml",
                     "mitre-atlas": "atlas", "nist-ai-rmf": "nist_ai_rmf"}


def ids(controls: Any) -> list[str]:
    return [c.id for c in controls]


def only(findings: list[Finding], control_id: str) -> Finding:
    (finding,) = [f for f in findings if f.control == control_id]
    return finding


def judge_one(control: ControlType, *evidence: dict[str, Any], **kwargs: Any) -> Finding:
    return only(evaluate(audit(*evidence), "baseline", **kwargs), control.id)


# ---------------------------------------------------------------- packs


def test_the_shipped_packs_are_listed() -> None:
    assert available_packs() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_pack_loads_and_every_control_cites_a_known_reference(name: str) -> None:
    pack = load_pack(name)
    assert pack.name == name and pack.controls
    catalogue = load_catalogue()
    for control in pack.controls:
        assert control.references, control.id
        for framework, refs in control.references.items():
            assert set(refs) <= set(catalogue.frameworks[framework].ids), control.id
        assert set(control.evidence) <= set(catalogue.evidence), control.id


@pytest.mark.parametrize("name", sorted(FRAMEWORK_OF_PACK))
def test_regulation_packs_select_baseline_controls_by_reference(name: str) -> None:
    """One definition, many packs: a regulation pack is the baseline filtered by citation."""
    framework = FRAMEWORK_OF_PACK[name]
    pack = load_pack(name)
    assert pack.framework == framework
    assert ids(pack.controls) == [c.id for c in CONTROLS if framework in c.references]
    assert all(c is load_pack("baseline").control(c.id) for c in pack.controls)
    text = Path(pack.file).read_text(encoding="utf-8")
    assert "controls:" not in text and "condition" not in text


def test_the_gdpr_pack_covers_the_articles_the_issue_names() -> None:
    cited = {ref for c in load_pack("gdpr").controls for ref in c.references["gdpr"]}
    assert {"32(1)(a)", "32(1)(b)", "32(1)(d)", "5(1)(c)", "5(1)(f)", "9(1)"} <= cited


def test_every_control_has_pass_and_fail_fixtures() -> None:
    for control in CONTROLS:
        missing = [name for name in control.evidence if name not in FIXTURES]
        assert not missing, f"{control.id} reads {missing}: add them to policy_fixtures.FIXTURES"


def test_fixtures_use_only_catalogued_metrics() -> None:
    catalogue = load_catalogue()
    assert set(FIXTURES) == set(catalogue.evidence)
    for name, pair in FIXTURES.items():
        for entry in pair:
            assert entry["probe"] == name
            assert set(entry["metrics"]) <= set(catalogue.evidence[name].metrics), name


# ---------------------------------------------------------------- every control, both ways


@pytest.mark.parametrize("control", CONTROLS, ids=ids(CONTROLS))
def test_control_passes_on_good_evidence(control: ControlType) -> None:
    finding = judge_one(control, *(FIXTURES[name][0] for name in control.evidence))
    assert finding.status == "pass", finding.detail
    assert finding.detail.startswith("Met:")
    assert set(finding.evidence) == set(control.evidence)


FAIL_CASES = [(c, name) for c in CONTROLS if c.when_missing == "not_assessed" for name in c.evidence]


@pytest.mark.parametrize(("control", "bad"), FAIL_CASES, ids=[f"{c.id}-{n}" for c, n in FAIL_CASES])
def test_control_fails_when_one_piece_of_evidence_is_bad(control: ControlType, bad: str) -> None:
    evidence = [FIXTURES[name][1 if name == bad else 0] for name in control.evidence]
    finding = judge_one(control, *evidence)
    assert finding.status == "fail", finding.detail
    assert "Not met by 1 of" in finding.detail and bad in finding.detail


@pytest.mark.parametrize("control", [c for c in CONTROLS if c.when_missing == "fail"],
                         ids=[c.id for c in CONTROLS if c.when_missing == "fail"])
def test_controls_that_require_evidence_fail_without_it(control: ControlType) -> None:
    finding = judge_one(control)
    assert finding.status == "fail"
    assert "No evidence from" in finding.detail
    assert exit_code_for([finding], "info") == 1


@pytest.mark.parametrize("control", [c for c in CONTROLS if c.when_missing == "not_assessed"],
                         ids=[c.id for c in CONTROLS if c.when_missing == "not_assessed"])
def test_missing_evidence_is_not_assessed_never_a_pass(control: ControlType) -> None:
    finding = judge_one(control)
    assert finding.status == "not_assessed"
    assert "no evidence from" in finding.detail and finding.evidence == ()


def test_other_evidence_does_not_assess_a_control() -> None:
    finding = only(evaluate(audit(*FIXTURES["evasion.pgd"]), "baseline"), "GRD-PRV-01")
    assert finding.status == "not_assessed"


# ---------------------------------------------------------------- intervals and thresholds


def pgd(value: float, lo: float, hi: float, n: int = 500, eps: float = 0.1) -> dict[str, Any]:
    return evasion("evasion.pgd", robust=metric(value, n, (lo, hi)), eps=eps)


def test_robustness_fails_only_when_the_whole_interval_is_below_the_threshold() -> None:
    control = load_pack("baseline").control("GRD-EVA-01")
    assert control is not None
    assert judge_one(control, pgd(0.46, 0.42, 0.51)).status == "pass"  # noise: could be >= 0.5
    failing = judge_one(control, pgd(0.40, 0.36, 0.45))
    assert failing.status == "fail"
    assert "evasion.pgd (eps=0.1, norm=inf): robust_accuracy 0.4 [0.36, 0.45] n=500" in failing.detail
    assert "at least 0.5" in failing.detail


def test_each_measurement_is_judged_and_failures_are_named() -> None:
    control = load_pack("baseline").control("GRD-EVA-01")
    assert control is not None
    finding = judge_one(control, pgd(0.8, 0.76, 0.83, eps=0.05), pgd(0.1, 0.08, 0.13, eps=0.2))
    assert finding.status == "fail"
    assert "Not met by 1 of 2" in finding.detail and "eps=0.2" in finding.detail
    assert "eps=0.05" not in finding.detail


def test_thresholds_override_by_name_and_by_control() -> None:
    evidence = pgd(0.7, 0.66, 0.74)
    control = load_pack("baseline").control("GRD-EVA-01")
    assert control is not None
    assert judge_one(control, evidence).status == "pass"
    assert judge_one(control, evidence, thresholds={"min_robust_accuracy": 0.8}).status == "fail"
    strict_here = {"min_robust_accuracy": 0.8, "GRD-EVA-01": {"min_robust_accuracy": 0.6}}
    finding = judge_one(control, evidence, thresholds=strict_here)
    assert finding.status == "pass" and "at least 0.6" in finding.detail


def test_thresholds_from_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "m"\n\n[tool.guard]\nmodel = "m.pt"\n\n'
                         '[tool.guard.thresholds]\nmin_robust_accuracy = 0.9\n'
                         'max_membership_advantage = 0.2\n', encoding="utf-8")
    overrides = load_thresholds(pyproject)
    assert overrides.values == {"min_robust_accuracy": 0.9, "max_membership_advantage": 0.2}
    finding = only(evaluate(audit(pgd(0.8, 0.76, 0.83)), "baseline", thresholds=overrides), "GRD-EVA-01")
    assert finding.status == "fail"


def test_an_unknown_threshold_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "guard.toml"
    spec.write_text('model = "m.pt"\n\n[thresholds]\nmin_robust_accuracy = 0.6\nmin_robust_acc = 0.7\n',
                    encoding="utf-8")
    with pytest.raises(PolicyError, match=rf"{spec}:5: unknown threshold 'min_robust_acc'"):
        evaluate(audit(), "baseline", thresholds=load_thresholds(spec))


def test_a_threshold_of_the_wrong_kind_or_for_an_unknown_control_is_an_error() -> None:
    with pytest.raises(PolicyError, match="must be like its default 0.5"):
        evaluate(audit(), "baseline", thresholds={"min_robust_accuracy": "high"})
    with pytest.raises(PolicyError, match="thresholds for unknown control 'GRD-NOPE'"):
        evaluate(audit(), "baseline", thresholds=ThresholdOverrides.from_mapping({"GRD-NOPE": {"x": 1}}))


def test_thresholds_file_may_name_shipped_controls_this_run_does_not_load() -> None:
    """One [tool.guard.thresholds] serves runs with different packs; a typo still fails."""
    evaluate(audit(), "mitre-atlas", thresholds={"min_samples": 50})
    with pytest.raises(PolicyError, match="unknown threshold 'min_sample'"):
        evaluate(audit(), "mitre-atlas", thresholds={"min_sample": 50})


# ---------------------------------------------------------------- error status


def test_a_null_metric_is_an_error_not_a_pass() -> None:
    control = load_pack("baseline").control("GRD-EVA-01")
    assert control is not None
    finding = judge_one(control, evasion("evasion.pgd", robust=metric(None, 500)))
    assert finding.status == "error"
    assert "robust_accuracy is null" in finding.detail
    assert exit_code_for([finding], "high") == 1


def test_a_missing_metric_is_an_error_naming_it() -> None:
    control = load_pack("baseline").control("GRD-SUP-01")
    assert control is not None
    scan = {"probe": "supply_chain.scan", "params": {"path": "m.pt"}, "metrics": {"critical": metric(0.0)}}
    finding = judge_one(control, scan)
    assert finding.status == "error" and "no key 'high'" in finding.detail


def test_a_condition_that_cannot_be_evaluated_is_an_error(tmp_path: Path) -> None:
    pack = tmp_path / "pack.yaml"
    pack.write_text(
        "pack: odd\ncontrols:\n"
        "  - id: ODD-1\n    title: t\n    severity: low\n    rationale: r\n    remediation: f\n"
        "    evidence: [evasion.pgd]\n    condition: params.norm + 1.0 > 0.0\n"
        "    references: {owasp_ml: [ML01]}\n"
        "  - id: ODD-2\n    title: t\n    severity: low\n    rationale: r\n    remediation: f\n"
        "    evidence: [evasion.pgd]\n    condition: metrics.robust_accuracy.value\n"
        "    references: {owasp_ml: [ML01]}\n",
        encoding="utf-8",
    )
    findings = evaluate(audit(pgd(0.8, 0.76, 0.83)), pack)
    assert [f.status for f in findings] == ["error", "error"]
    assert "Could not evaluate 1 of 1" in findings[0].detail
    assert "not true or false" in findings[1].detail


# ---------------------------------------------------------------- findings and exit codes


def test_findings_have_the_report_shape() -> None:
    finding = only(evaluate(audit(FIXTURES["evasion.pgd"][1]), "gdpr"), "GRD-EVA-01")
    doc = finding.to_dict()
    assert list(doc) == ["control", "status", "severity", "title", "references", "evidence", "detail",
                         "remediation", "waiver"]
    assert list(doc["references"]) == ["gdpr", "ccpa", "eu_ai_act", "owasp_ml", "atlas", "nist_ai_rmf"]
    assert doc["references"]["gdpr"] == ["32(1)(b)"] and doc["references"]["ccpa"] == []
    assert doc["evidence"] == ["evasion.pgd"] and doc["waiver"] is None and doc["status"] == "fail"


def test_evaluate_reads_an_audit_result_like_its_dict() -> None:
    result = AuditResult(target={"name": "m"}, evidence=[evidence_from_dict(FIXTURES["evasion.pgd"][1])],
                         environment={})
    assert evaluate(result, "baseline") == evaluate(result.to_dict(), "baseline")


def test_controls_shared_by_packs_are_evaluated_once() -> None:
    findings = evaluate(audit(), ["gdpr", "ccpa", load_pack("eu-ai-act")])
    assert len(findings) == len({f.control for f in findings}) == len(CONTROLS)


def finding(status: str, severity: str, **extra: Any) -> Finding:
    return Finding("C", status, severity, "t", **extra)


@pytest.mark.parametrize(("fail_on", "expected"), [("info", 1), ("medium", 1), ("high", 0), ("none", 0)])
def test_exit_code_counts_failures_at_or_above_the_floor(fail_on: str, expected: int) -> None:
    findings = [finding("fail", "medium"), finding("pass", "critical"), finding("not_assessed", "critical"),
                finding("waived", "critical")]
    assert exit_code_for(findings, fail_on) == expected


def test_exit_code_ignores_known_baseline_failures_but_not_expired_waivers() -> None:
    assert exit_code_for([finding("fail", "high", baseline="known")], "low") == 0
    assert exit_code_for([finding("fail", "high", baseline="new")], "low") == 1
    expired = {"expired": True}
    assert exit_code_for([finding("fail", "high", baseline="known", waiver=expired)], "low") == 1


def test_exit_code_rejects_an_unknown_severity() -> None:
    with pytest.raises(ConfigError, match="fail-on must be one of"):
        exit_code_for([], "severe")


def test_control_type_is_exported() -> None:
    assert Control is ControlType


WHERE_PACK = """\
pack: release
controls:
  - id: REL-01
    title: PGD robust accuracy at the release budget
    severity: high
    rationale: Release gate.
    remediation: Train adversarially.
    evidence: [evasion.*]
    where: params.eps == thresholds.release_eps && probe != 'evasion.fgsm'
    condition: metrics.robust_accuracy.upper >= thresholds.min_robust_accuracy
    thresholds: {release_eps: 0.03, min_robust_accuracy: 0.7}
    references: {eu_ai_act: [15(5)]}
"""


def test_where_selects_the_measurements_a_control_judges(tmp_path: Path) -> None:
    pack = tmp_path / "release.yaml"
    pack.write_text(WHERE_PACK, encoding="utf-8")
    weak_elsewhere = [pgd(0.9, 0.87, 0.93, eps=0.03), pgd(0.1, 0.08, 0.13, eps=0.3),
                      evasion("evasion.fgsm", robust=metric(0.1, 500, (0.08, 0.13)), eps=0.03)]
    (finding,) = evaluate(audit(*weak_elsewhere), pack)
    assert finding.status == "pass" and "all 1 measurements" in finding.detail
    (finding,) = evaluate(audit(pgd(0.1, 0.08, 0.13, eps=0.3)), pack)
    assert finding.status == "not_assessed" and "matched the control's 'where'" in finding.detail
    (finding,) = evaluate(audit(pgd(0.1, 0.08, 0.13, eps=0.05)), pack, thresholds={"release_eps": 0.05})
    assert finding.status == "fail"
